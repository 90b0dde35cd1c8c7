"""Announcing a release, inside the deploy: queue the event and hand it to a detached deliverer.

``announce_release`` writes ``deliveries/ID.json`` and starts ``python -m gitpaas.notify deliver
FILE``; it never waits for a receiver and never raises, so notifications can neither slow nor
fail a deploy. Problems go to ``$GITPAAS_HOME/logs/notify.log`` instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from gitpaas.notify.event import hide_server_paths, release_event
from gitpaas.notify.store import PENDING, Notifications
from gitpaas.release import FAILED, Release, now_iso
from gitpaas.settings import Settings, read_home_record
from gitpaas.signing import release_output_path
from gitpaas.store.files import PRIVATE, open_private, write_json


def _output_url(settings: Settings, release: Release, hooks: list) -> str | None:
    """The release output's signed URL on the published API, for these webhooks' receivers; None
    when the API is not published (the event's ``output_tail`` is all receivers get then)."""
    api_url = read_home_record(settings.home).get("api_url")
    if not api_url or not hooks or not release.process_types.get("release"):
        return None
    return api_url + release_output_path(settings, release.app["name"], release.app["id"], release.version,
                                         webhooks=[hook.id for hook in hooks])


def announce_release(settings: Settings, app_name: str, release: Release, output_tail: str) -> None:
    """Queue the event for ``release`` and start a detached deliverer. Never raises, never waits."""
    try:
        notes = Notifications.for_app(settings, app_name)
        hooks = notes.webhooks()
        email = notes.email() if release.status == FAILED else None
        if not hooks and email is None:
            return
        event = hide_server_paths(release_event(release, output_tail, _output_url(settings, release, hooks)),
                                  settings.home)
        record = {
            "id": event["id"], "app": app_name, "release": release.version, "release_status": release.status,
            "created_at": event["created_at"], "status": PENDING, "deliverer_pid": None,
            "failure": hide_server_paths(release.failure, settings.home),
            "webhooks": [{"webhook_id": hook.id, "url": hook.url, "delivery_id": str(uuid.uuid4()),
                          "status": PENDING, "attempts": []} for hook in hooks],
            "email": None if email is None else {"to": email.to, "smtp": email.smtp, "status": PENDING, "attempts": []},
            "event": event,
        }
        notes.deliveries_dir.mkdir(mode=0o700, exist_ok=True)
        path = notes.deliveries_dir / f"{event['id']}.json"
        write_json(path, record, mode=PRIVATE)
        # The deliverer builds its Settings from this environment: give it the ones this deploy has.
        env = {**os.environ, "GITPAAS_HOME": str(settings.home),
               "GITPAAS_WEBHOOK_PRIVATE_TARGETS": "1" if settings.webhook_private_targets else "0"}
        deliverer = subprocess.Popen(
            [sys.executable, "-m", "gitpaas.notify", "deliver", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True, env=env,
        )
        # Reap it when it ends, so a long-lived caller (the API) collects no zombies; a caller that
        # exits first (the git hook) leaves it running on its own.
        threading.Thread(target=deliverer.wait, name="gitpaas-deliverer-reaper", daemon=True).start()
    except Exception as exc:
        # Best effort on purpose: the release is already decided and recorded; a broken settings
        # file, a full disk or a failed spawn must never fail the deploy, so it is only logged.
        version = getattr(release, "version", "?")
        log_problem(settings.home, f"{app_name} v{version}: could not announce the release: {exc!r}")


def log_problem(home: Path, message: str) -> None:
    """Append one line to ``$GITPAAS_HOME/logs/notify.log``; silently give up if that fails too."""
    try:
        path = Path(home) / "logs" / "notify.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_private(path, "a") as handle:
            handle.write(f"{now_iso()} {message}\n")
    except Exception:
        # The last resort of a best-effort path: with no log to write to there is nowhere left to
        # report, and raising would fail the deploy (or the deliverer) over a notification.
        pass
