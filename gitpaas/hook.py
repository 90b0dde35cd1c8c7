"""Entry point of the git hooks: ``python -m gitpaas.hook pre-receive``. (An app's installed hook
runs ``python -S …/gitpaas/forkserver/hook_client.py hook pre-receive``, which hands the push to the
home's fork server, whose child runs ``run`` below; when no server takes it, the script becomes
this module, in the same process.)

Transport-neutral: git runs the same hook for a push to a local path, over SSH or over smart
HTTP, with the pushed refs on standard input and the output relayed to the pusher as ``remote:``
lines. A non-zero exit rejects the push and git leaves the ref where it was.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gitpaas import forkserver
from gitpaas.lazy import lazy

if TYPE_CHECKING:
    from gitpaas.errors import GitpaasError
    from gitpaas.output import Output, StreamOutput
    from gitpaas.platform import Platform

# Loaded once the hook runs here rather than in the home's fork server (gitpaas.forkserver): a
# push handed to the server costs this process only the interpreter and the fork server's client.
errors = lazy("gitpaas.errors")
identity = lazy("gitpaas.identity")
output_module = lazy("gitpaas.output")
files = lazy("gitpaas.store.files")
platform_module = lazy("gitpaas.platform")
receive = lazy("gitpaas.receive")
settings_module = lazy("gitpaas.settings")


def app_name_of(git_dir: Path) -> str:
    """``$GITPAAS_HOME/apps/NAME/repo.git`` → ``NAME``."""
    return git_dir.resolve().parent.name


def explain_failure(output: Output, exc: GitpaasError, app: str, running: int | None, gone: bool = False) -> None:
    """Tell the pusher what failed, what is still running, and where to look next (never a server path:
    the pusher may be on another machine). ``gone``: the app is no more (a review app made for a
    refused branch): only what failed is said."""
    output.warn(str(exc))
    if gone:
        return
    if isinstance(exc, errors.BuildFailed) and exc.log_path:
        output.warn(f"Full build log: builds/{Path(exc.log_path).name} in {app}'s folder on the server")
    version = getattr(exc, "version", None) if isinstance(exc, (errors.ReleaseFailed, errors.BootFailed)) else None
    if version is not None:
        output.warn(f"v{version} is recorded as failed; see `gitpaas releases:output v{version} -a {app}`")
    if isinstance(exc, (errors.BuildFailed, errors.ReleaseFailed, errors.BootFailed)):
        output.warn(f"{app} keeps running v{running}, untouched." if running else f"{app} has nothing running yet.")


def pre_receive(stdin_lines: list[str], platform: Platform, git_dir: Path, output: StreamOutput,
                environ: dict[str, str] | None = None) -> int:
    """Deploy each pushed ref, as the account git says pushed it (``GITPAAS_USER``, set by the SSH
    and HTTPS shells) or else the server's operator (a local push); 0 when all went live."""
    environ = dict(os.environ if environ is None else environ)
    app = app_name_of(git_dir)
    actor = identity.Actor(environ.get("GITPAAS_USER") or None)
    updates = [line.split() for line in stdin_lines if line.strip()]
    try:
        receive.check_updates([ref for _, _, ref in updates])
        for old, new, ref in updates:
            receive.receive_ref(platform, app, old, new, ref, output, actor, environ=environ)
    except errors.GitpaasError as exc:
        failed = getattr(exc, "app_name", None) or app  # a review app's, when a branch's push failed
        running, gone = None, False
        try:
            running = platform.apps.get(failed).current_release
        except errors.GitpaasError:
            gone = True  # the app itself is gone or unreadable: say only what failed
        explain_failure(output, exc, failed, running, gone)
        return 1
    except KeyboardInterrupt as exc:
        output.warn(f"Deploy interrupted ({exc or 'SIGINT'}); the release in progress is recorded as failed")
        return 1
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            return _unexpected(platform, output)
        explain_failure(output, errors.DiskFull(), app, None)
        return 1
    except Exception:  # an unexpected failure: log it whole, tell the pusher one line
        return _unexpected(platform, output)
    return 0


def _unexpected(platform: Platform, output: Output) -> int:
    """Log the traceback on the server; tell the pusher one line, with no server path in it."""
    import traceback
    kind = sys.exc_info()[0].__name__
    try:
        log = platform.settings.home / "logs" / "hook.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(traceback.format_exc())
    except OSError:
        pass  # (a full disk, say): the pusher still gets the line below
    output.warn(f"gitpaas failed unexpectedly ({kind}); the server's logs/hook.log has the details")
    return 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["pre-receive"]:
        print("usage: python -m gitpaas.hook pre-receive", file=sys.stderr)
        return 2
    status = forkserver.hand_off("hook", argv, None)
    return run(argv) if status is None else status


def run(argv: list[str]) -> int:
    """The hook, in this process."""
    import logging
    logging.basicConfig(level=logging.WARNING)
    os.umask(files.PRIVATE_UMASK)
    # A hang-up or terminate (the pusher's connection dropped, an admin's kill) unwinds the deploy like
    # Ctrl-C does: the release is recorded as failed and its containers removed. kill -9 cannot be
    # caught: recovery settles that release the next time gitpaas runs.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    output = output_module.StreamOutput(sys.stdout)
    try:
        settings = settings_module.Settings.from_env()
    except errors.GitpaasError as exc:
        output.warn(str(exc))
        return 1
    git_dir = Path(os.environ.get("GIT_DIR", "."))
    return pre_receive(sys.stdin.read().splitlines(), platform_module.Platform(settings), git_dir, output)


if __name__ == "__main__":
    sys.exit(main())
