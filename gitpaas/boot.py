"""``gitpaas boot``: bring a home back after the machine (or the Docker engine) restarted.

Run by the ``gitpaas-boot`` systemd unit that setup installs, or by hand / cron ``@reboot`` where
systemd does not run. In order, each step saying what it did (also in ``logs/boot.log``):

1. wait for the Docker engine to answer (it may start after us);
2. rewrite the app hooks and SSH forced commands if gitpaas was upgraded (``refresh_entry_points``);
3. start the home's router (nginx does not survive a reboot; the apps' containers do);
4. settle releases a crash left ``pending`` (marked failed, the formation put back on the last good
   release), as every command does;
5. for every app with a release: start its add-ons and wait until each accepts connections (a
   database first, its app after), finish the retirements the restart interrupted, then converge its
   formation on its current release — containers that are missing, or that stopped and are not
   coming back, are replaced; the router is pointed at the processes as they now are (a
   published port that changed is followed).

Running it again changes nothing: every step only acts on a difference.
"""

from __future__ import annotations

import time

from gitpaas.addons import runtime as addon_runtime
from gitpaas.errors import EnvironmentProblem, GitpaasError
from gitpaas.formation import deployment
from gitpaas.locks import recover_all, release_lock
from gitpaas.appview import current_release
from gitpaas.operations import refresh_entry_points
from gitpaas.output import NullOutput, Output
from gitpaas.platform import Platform
from gitpaas.release import now_iso

ENGINE_WAIT = 120.0


def boot(platform: Platform, output: Output, engine_wait: float = ENGINE_WAIT) -> list[str]:
    """Bring every app of the home back; returns what was done (empty: nothing needed doing)."""
    done: list[str] = []

    def did(line: str) -> None:
        done.append(line)
        output.info(line)
        _log(platform, line)

    _wait_for_engine(platform, engine_wait, output)
    if refresh_entry_points(platform):
        did("rewrote the apps' git hooks and the SSH forced commands for this gitpaas")
    if not platform.router.is_running():
        platform.router.ensure_running()
        did(f"started the router on port {platform.settings.http_port}")
    recover_all(platform, _Reporting(output, did))
    for app in platform.apps.list():
        if app.maintenance:  # (a restored home's router has no record of it)
            platform.router.set_maintenance(app.name, True)
        if current_release(platform, app.name) is None:
            continue
        try:
            with release_lock(platform, app.name, output):
                for line in addon_runtime.ensure_ready(platform, app.name, NullOutput(), refresh=True):
                    did(f"{app.name}: {line}")
                for line in platform.scheduler.reconcile(app.name):
                    did(f"{app.name}: {line}")
                app = platform.apps.get(app.name)
                release = current_release(platform, app.name)
                report = platform.scheduler.deploy(
                    deployment(platform.settings, app, release, app.formation), NullOutput())
                if report.started:
                    did(f"{app.name}: started {', '.join(report.started)} of v{release.version}"
                        + (f", retired {', '.join(report.retired)}" if report.retired else ""))
        except GitpaasError as exc:  # one app that cannot come back must not keep the others down
            did(f"{app.name}: could not be brought back: {exc}")
    if not done:
        output.info("Everything was running already: nothing to do")
    return done


def _wait_for_engine(platform: Platform, timeout: float, output: Output) -> None:
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            platform.engine()
            return
        except EnvironmentProblem:
            if time.monotonic() > deadline:
                raise
            if not said:
                output.info("Waiting for the Docker engine to answer…")
                said = True
            time.sleep(1)


def _log(platform: Platform, line: str) -> None:
    path = platform.settings.home / "logs" / "boot.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{now_iso()} {line}\n")


class _Reporting:
    """An Output that also records recovery's warnings as things boot did."""

    def __init__(self, output: Output, did) -> None:
        self.output = output
        self.did = did

    def stage(self, title: str) -> None:
        self.output.stage(title)

    def info(self, text: str) -> None:
        self.output.info(text)

    def warn(self, text: str) -> None:
        self.did(text)
