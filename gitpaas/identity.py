"""Who acts: an account (by e-mail) or the server's local operator, and the one derivation of an
account's id. Pure: the acting user is passed to the operations that record it, never kept on a
shared object."""

from __future__ import annotations

import getpass
import socket
import uuid
from dataclasses import dataclass


def account_id(email: str) -> str:
    """An account's id: stable, derived from its e-mail (the id releases record as their ``user``)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email}"))


def account_ref(email: str) -> dict[str, str]:
    """An account as the Platform API refers to it: ``{"email": …, "id": …}``."""
    return {"email": email, "id": account_id(email)}


@dataclass(frozen=True)
class Actor:
    """The one doing something: ``account`` is an e-mail for someone who came in with a token or
    a key; None for the server's operator (a command typed on the server, a local ``git push``)."""

    account: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.account is None

    def may_use(self, owner: str | None, collaborators: list[str]) -> bool:
        """May this actor use an app with this owner and these collaborators? The operator may use any."""
        return self.account is None or self.account == owner or self.account in collaborators

    def user(self) -> dict[str, str]:
        """The release record's ``user``: the account, or the local OS user at this host."""
        return account_ref(self.account or local_email())


OPERATOR = Actor()


def local_email() -> str:
    """The OS user running gitpaas, as an address at this host (``root@server``)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"{name}@{socket.gethostname() or 'localhost'}"
