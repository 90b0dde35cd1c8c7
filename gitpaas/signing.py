"""Signed stream URLs: unguessable, unforgeable, and limited in what they stream, for whom and
for how long — like Heroku's. The Heroku CLI fetches a release's output and a log session without
credentials, and a webhook's receiver gets the output of the release it is told about; each URL
carries its own limits, checked again when it is opened (``gitpaas.api.core.stream_app``).

The key is ``accounts/server-secret`` in the home (0600), made on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path

from gitpaas.errors import NotFound
from gitpaas.settings import Settings
from gitpaas.store.files import write_atomic

#: how long a release's output URL may be opened (each listing of the release issues a new one)
RELEASE_OUTPUT_TTL = 24 * 3600


class Signer:
    """Unguessable, unforgeable URLs for streams (release output, log sessions), like Heroku's.

    The Heroku CLI fetches them without credentials, so a URL carries its own limits: what it
    streams (``kind``), the app's name *and id* (an app that reuses the name is another app), the
    account it was issued to (``stream_app`` checks it may still use the app) and when it expires."""

    def __init__(self, settings: Settings) -> None:
        path = settings.home / "accounts" / "server-secret"
        if not path.exists():
            write_atomic(path, secrets.token_bytes(32), mode=0o600)
        self.key = Path(path).read_bytes()

    def sign(self, kind: str, claims: dict, ttl: float) -> str:
        payload = {"kind": kind, **claims, "exp": int(time.time() + ttl)}
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def verify(self, token: str, kind: str) -> dict:
        """The claims of a token this server signed for ``kind`` that has not expired; otherwise 404
        (tokens of older gitpaas versions, without an expiry, included)."""
        not_found = NotFound("Couldn't find that stream.")
        body, _, mac = token.partition(".")
        if not body.isascii() or not mac.isascii() or not hmac.compare_digest(mac, self._mac(body.encode())):
            raise not_found
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors too
            raise not_found from None
        if not isinstance(claims, dict) or claims.get("kind") != kind or type(claims.get("exp")) is not int:
            raise not_found
        if claims["exp"] < time.time():
            raise NotFound("This stream's URL has expired: ask the API for a new one.")
        return claims

    def _mac(self, body: bytes) -> str:
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()[:32]


def release_story_path(settings: Settings, app: str, app_id: str, version: int, user: str) -> str:
    """The path (``/streams/release-story/TOKEN``) of what the pipeline said making ``version``."""
    claims = {"app": app, "app_id": app_id, "v": version, "user": user}
    return f"/streams/release-story/{Signer(settings).sign('release-story', claims, RELEASE_OUTPUT_TTL)}"


def release_output_path(settings: Settings, app: str, app_id: str, version: int, **audience: str | list[str]) -> str:
    """The path (``/streams/release-output/TOKEN``) of release ``version``'s output, for ``audience``:
    ``user=EMAIL`` (an account that may use the app) or ``webhooks=[ID, …]`` (its webhooks' receivers)."""
    claims = {"app": app, "app_id": app_id, "v": version, **audience}
    return f"/streams/release-output/{Signer(settings).sign('release-output', claims, RELEASE_OUTPUT_TTL)}"
