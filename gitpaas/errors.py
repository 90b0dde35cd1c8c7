"""One exception tree for the whole of gitpaas.

Every failure a user can cause or meet is one of these. Each carries the data that explains it,
and knows the exit code the CLI returns and the HTTP status (and error id) the API answers with.
The shells (``cli``, the git hook, the SSH forced command, ``api``) render them in one place each;
nothing else prints them. Third-party exceptions (Docker's, git's) are translated into these where
gitpaas calls the library, with ``raise … from exc``.

    GitpaasError                      exit 1, HTTP 500
    ├── UsageError                    exit 2, HTTP 400   bad input on the command line or in a request
    │   ├── InvalidAppName
    │   ├── InvalidProcessType
    │   ├── InvalidParams                     HTTP 422   a request whose fields do not fit together
    │   ├── BadRange                          HTTP 400   an unreadable Range header
    │   └── RequestTooLarge                   HTTP 413
    ├── NotFound                      exit 3, HTTP 404
    │   ├── AppNotFound
    │   ├── ReleaseNotFound
    │   ├── ProcessNotFound
    │   └── UserNotFound
    ├── AppExists                     exit 4, HTTP 409
    ├── PushRefused                   exit 5, HTTP 422   the push cannot be deployed as it is
    │   ├── ProcfileError(line, reason)
    │   └── UnsupportedApp
    ├── BuildFailed(reason, log_tail, log_path)          exit 6, HTTP 422
    ├── ReleaseFailed(version, reason, exit_status)      exit 7, HTTP 422
    │   └── ConfigChangeFailed(app, version, reason, running)   the change is kept, its release failed
    ├── BootFailed(process, reason, log_tail, version)   exit 7, HTTP 422   a new process did not come up
    ├── EnvironmentProblem            exit 8, HTTP 503   Docker, nginx, the disk or the stack is not usable
    │   └── DiskFull
    ├── DamagedRecord(app, record, reason)  exit 10, HTTP 500   a file of the home cannot be read
    ├── Unauthorized                  exit 9, HTTP 401   no credentials, or bad ones
    └── Forbidden                     exit 9, HTTP 403   known, but not allowed to do this
"""

from __future__ import annotations


class GitpaasError(Exception):
    """Root of every expected gitpaas failure."""

    exit_code = 1
    http_status = 500
    error_id = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        #: extra HTTP response headers the API sends with this error
        self.http_headers: dict[str, str] = {}

    def __str__(self) -> str:
        return self.message


class UsageError(GitpaasError):
    exit_code = 2
    http_status = 400
    error_id = "invalid_params"


class InvalidAppName(UsageError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"invalid app name {name!r}: use a lowercase letter first, then lowercase letters, "
            "digits and dashes, not ending with a dash, 30 characters at most"
        )
        self.name = name


class InvalidProcessType(UsageError):
    pass


class InvalidParams(UsageError):
    """A request that parses but whose fields do not make sense together."""

    http_status = 422


class BadRange(UsageError):
    error_id = "invalid_range"


class RequestTooLarge(UsageError):
    http_status = 413
    error_id = "request_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"Request bodies are limited to {limit} bytes.")
        self.limit = limit


class NotFound(GitpaasError):
    """Something named does not exist (or is not the asker's to see)."""

    exit_code = 3
    http_status = 404
    error_id = "not_found"


class AppNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"app {name!r} not found (see `gitpaas apps`)")
        self.name = name


class AppExists(GitpaasError):
    exit_code = 4
    http_status = 409
    error_id = "conflict"

    def __init__(self, name: str) -> None:
        super().__init__(f"app {name!r} already exists")
        self.name = name


class ReleaseNotFound(NotFound):
    def __init__(self, app: str, version: int | str) -> None:
        super().__init__(f"app {app!r} has no release v{version}")
        self.app = app
        self.version = version


class ProcessNotFound(NotFound):
    def __init__(self, app: str, process: str) -> None:
        super().__init__(f"no process {process!r} is running for {app} (see `gitpaas ps -a {app}`)")
        self.app = app
        self.process = process


class UserNotFound(NotFound):
    def __init__(self, email: str) -> None:
        super().__init__(f"no user {email!r} (see `gitpaas users`)")
        self.email = email


class PushRefused(GitpaasError):
    exit_code = 5
    http_status = 422
    error_id = "push_refused"


class ProcfileError(PushRefused):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"Procfile line {line}: {reason}")
        self.line = line
        self.reason = reason


class UnsupportedApp(PushRefused):
    pass


class BuildFailed(GitpaasError):
    exit_code = 6
    http_status = 422
    error_id = "build_failed"

    def __init__(self, reason: str, log_tail: str = "", log_path: str | None = None) -> None:
        super().__init__(f"build failed: {reason}")
        self.reason = reason
        self.log_tail = log_tail
        #: where the whole build log is kept on the server
        self.log_path = log_path


class ReleaseFailed(GitpaasError):
    exit_code = 7
    http_status = 422
    error_id = "release_failed"

    def __init__(self, version: int, reason: str, exit_status: int | None = None) -> None:
        super().__init__(f"release v{version} failed: {reason}")
        self.version = version
        self.reason = reason
        self.exit_status = exit_status


class ChangeReleaseFailed(ReleaseFailed):
    """A change was made (as on Heroku: a config change is saved, an add-on attached or detached)
    but the release it created failed: the processes keep running the release before it
    (``keeping`` says with what, e.g. " with the previous config")."""

    def __init__(self, app: str, change: str, version: int, reason: str, running: int | None,
                 exit_status: int | None = None, keeping: str = "") -> None:
        super().__init__(version, reason, exit_status)
        keeps = f"The processes keep running v{running}{keeping}" if running else "Nothing was running before it"
        self.message = (f"{change}, but release v{version} failed: {reason}. {keeps}; "
                        f"see `gitpaas releases:output v{version} -a {app}`")
        self.app = app
        self.running = running


class ConfigChangeFailed(ChangeReleaseFailed):
    """A config change was saved but the release it made failed: the processes keep running the
    release before it, with the previous config."""

    def __init__(self, app: str, version: int, reason: str, running: int | None,
                 exit_status: int | None = None) -> None:
        super().__init__(app, "the config change is saved", version, reason, running, exit_status,
                         keeping=" with the previous config")


class BootFailed(GitpaasError):
    """A new process of ``version`` did not come up healthy; a release being deployed fails with it."""

    exit_code = 7
    http_status = 422
    error_id = "release_failed"

    def __init__(self, process: str, reason: str, log_tail: str = "", version: int | None = None) -> None:
        super().__init__(f"{process} {reason}")
        self.process = process
        self.reason = reason
        self.log_tail = log_tail
        self.version = version


class EnvironmentProblem(GitpaasError):
    exit_code = 8
    http_status = 503
    error_id = "unavailable"


class DiskFull(EnvironmentProblem):
    def __init__(self) -> None:
        super().__init__("the disk holding gitpaas's home is full: free some space and try again "
                         "(nothing was changed that cannot be redone)")


class DamagedRecord(GitpaasError):
    """A record on disk that cannot be read (truncated by a crash or a full disk, edited by hand)."""

    exit_code = 10
    http_status = 500
    error_id = "damaged_record"

    def __init__(self, app: str, record: str, reason: str) -> None:
        super().__init__(f"{app}: {record} is damaged ({reason}); the other records are unaffected: "
                         "restore it from a backup, or remove it")
        self.app = app
        self.record = record
        self.reason = reason


class Unauthorized(GitpaasError):
    exit_code = 9
    http_status = 401
    error_id = "unauthorized"

    def __init__(self, message: str, challenge: str | None = None) -> None:
        super().__init__(message)
        if challenge:
            self.http_headers["WWW-Authenticate"] = challenge


class Forbidden(GitpaasError):
    exit_code = 9
    http_status = 403
    error_id = "forbidden"
