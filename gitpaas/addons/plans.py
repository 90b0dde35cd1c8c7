"""The add-on services gitpaas has, and the names Heroku gives what they make. Pure.

    gitpaas addons:create postgresql   (or heroku-postgresql, heroku-postgresql:essential-0, …)
        → an add-on named like ``postgresql-curved-12345``, attached as DATABASE: DATABASE_URL;
          a second one as HEROKU_POSTGRESQL_<COLOR>: HEROKU_POSTGRESQL_<COLOR>_URL
    gitpaas addons:create redis        (or heroku-redis)
        → ``redis-…``, attached as REDIS: REDIS_URL; a second one HEROKU_REDIS_<COLOR>_URL

Each service has one plan here, ``local`` (the database runs on this server); a Heroku plan name
after the colon is accepted, so commands copied from a tutorial work, and recorded as ``local``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote

from gitpaas.errors import UsageError

PLAN = "local"
#: Heroku's colors for the attachments after the first (HEROKU_POSTGRESQL_AMBER_URL, …)
COLORS = ("AMBER", "BLACK", "BLUE", "BRONZE", "BROWN", "CHARCOAL", "COBALT", "COPPER", "CRIMSON", "CYAN",
          "GOLD", "GRAY", "GREEN", "IVORY", "JADE", "LIME", "MAGENTA", "MAROON", "NAVY", "OLIVE", "ONYX",
          "ORANGE", "PINK", "PUCE", "PURPLE", "RED", "ROSE", "SILVER", "TEAL", "WHITE", "YELLOW")
_ADJECTIVES = ("angular", "cubic", "curved", "deep", "fluffy", "graceful", "horizontal", "lively", "opaque",
               "rigid", "round", "shaped", "silhouetted", "solid", "sinuous", "spherical", "symmetrical",
               "tetrahedral", "transparent", "triangular", "vertical")
_ATTACHMENT = re.compile(r"[A-Z][A-Z0-9_]{0,49}")
_ADDON_NAME = re.compile(r"[a-z][a-z0-9-]{1,62}[a-z0-9]")


@dataclass(frozen=True)
class Service:
    #: gitpaas's name, the prefix of add-on names
    name: str
    #: Heroku's name for the same service (what ``heroku addons:create`` is given)
    heroku_name: str
    #: the attachment of an app's first add-on of this service (its config var: NAME_URL)
    first_attachment: str
    #: the prefix of the colored attachments after the first
    colored_prefix: str
    port: int
    scheme: str

    @property
    def plan_name(self) -> str:
        return f"{self.heroku_name}:{PLAN}"

    def url(self, user: str, password: str, host: str, database: str) -> str:
        """The connection URL the app gets in its config var."""
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}" if user else f":{quote(password, safe='')}"
        path = f"/{database}" if database else ""
        return f"{self.scheme}://{credentials}@{host}:{self.port}{path}"


POSTGRESQL = Service("postgresql", "heroku-postgresql", "DATABASE", "HEROKU_POSTGRESQL", 5432, "postgres")
REDIS = Service("redis", "heroku-redis", "REDIS", "HEROKU_REDIS", 6379, "redis")
SERVICES = {service.name: service for service in (POSTGRESQL, REDIS)}


def parse_plan(text: str) -> Service:
    """``postgresql``, ``heroku-postgresql``, ``heroku-postgresql:essential-0``, ``redis``… → the service."""
    service_name = text.strip().lower().partition(":")[0] if isinstance(text, str) else ""
    for service in SERVICES.values():
        if service_name in (service.name, service.heroku_name):
            return service
    raise UsageError(f"no add-on plan {text!r}: gitpaas has postgresql (heroku-postgresql) and redis (heroku-redis)")


def config_var(attachment: str) -> str:
    return f"{attachment}_URL"


def normalize_attachment(wanted: str) -> str:
    """``--as reports-db`` → ``REPORTS_DB``: the attachment name, as its config var spells it."""
    name = wanted.strip().upper().replace("-", "_")
    if not _ATTACHMENT.fullmatch(name):
        raise UsageError(f"invalid attachment name {wanted!r}: use letters, digits and '_' (like DATABASE)")
    return name


def attachment_for(service: Service, taken: set[str], wanted: str | None = None) -> str:
    """The attachment name a new add-on of ``service`` gets: ``wanted`` (``--as``), else the
    service's first one (DATABASE, REDIS) while it is free, else the next free color."""
    if wanted is not None:
        name = normalize_attachment(wanted)
        if name in taken:
            raise UsageError(f"the app already has an add-on attached as {name}")
        return name
    if service.first_attachment not in taken:
        return service.first_attachment
    for color in COLORS:
        candidate = f"{service.colored_prefix}_{color}"
        if candidate not in taken:
            return candidate
    raise UsageError(f"no attachment name left for another {service.name} add-on: name one with --as")


def new_addon_name(service: Service) -> str:
    """Heroku-style: ``postgresql-curved-12345``."""
    return f"{service.name}-{secrets.choice(_ADJECTIVES)}-{secrets.randbelow(90000) + 10000}"


def validate_addon_name(name: str) -> str:
    if not isinstance(name, str) or not _ADDON_NAME.fullmatch(name):
        raise UsageError(f"invalid add-on name {name!r}: lowercase letters, digits and dashes, 3 to 64 characters")
    return name


def new_password() -> str:
    return secrets.token_urlsafe(24)


def scram_verifier(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677): ``ALTER ROLE … PASSWORD``
    takes it as it is, so the password itself never reaches the server (nor its logs). SASLprep
    changes nothing in the ASCII passwords gitpaas makes."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", "sha256").digest()).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{encode(salt)}${encode(stored_key)}:{encode(server_key)}"
