"""What a command's change returned, in the same shape from the home and from a server; and the
checks both make before a change."""

from __future__ import annotations

from dataclasses import dataclass

from gitpaas.errors import UsageError


@dataclass
class ConfigOutcome:
    changed: bool
    #: the release the change made; None when the app has none yet (it takes effect with the first)
    version: int | None


@dataclass
class Access:
    owner: str | None
    collaborators: list[str]


def confirm_backup_deletion(app: str, backup_id: str, confirm: str | None) -> None:
    if confirm != app:
        raise UsageError(f"this deletes the backup {backup_id} of {app}; to proceed, run again with --confirm {app}")
