"""One exception tree for the whole of gitpaas.

Every failure a user can cause or meet is one of these. Each carries the data that explains it,
and knows the exit code the CLI returns and the HTTP status the API answers with. The shells
(``cli``, the git hook, ``api``) render them in one place; nothing else prints them.

    GitpaasError                      exit 1, HTTP 500
    ├── UsageError                    exit 2, HTTP 400   bad input on the command line or in a request
    │   ├── InvalidAppName
    │   └── InvalidProcessType
    ├── NotFound                      exit 3, HTTP 404
    │   ├── AppNotFound
    │   ├── ReleaseNotFound
    │   └── UserNotFound
    ├── AppExists                     exit 4, HTTP 409
    ├── PushRefused                   exit 5, HTTP 422   the push cannot be deployed as it is
    │   ├── ProcfileError(line, reason)
    │   └── UnsupportedApp
    ├── BuildFailed(reason, log_tail) exit 6, HTTP 422
    ├── ReleaseFailed(version, reason, exit_status)     exit 7, HTTP 422
    ├── BootFailed(process, reason, log_tail)           exit 7, HTTP 422   a new process did not come up
    └── EnvironmentProblem            exit 8, HTTP 503   Docker, nginx or the stack is not usable
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

    def __str__(self) -> str:
        return self.message

    def with_exit_code(self, code: int) -> "GitpaasError":
        """The same error, exiting with ``code`` (to keep the code of the failure it explains)."""
        self.exit_code = code
        return self


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

    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(f"build failed: {reason}")
        self.reason = reason
        self.log_tail = log_tail


class ReleaseFailed(GitpaasError):
    exit_code = 7
    http_status = 422
    error_id = "release_failed"

    def __init__(self, version: int, reason: str, exit_status: int | None = None) -> None:
        super().__init__(f"release v{version} failed: {reason}")
        self.version = version
        self.reason = reason
        self.exit_status = exit_status


class BootFailed(GitpaasError):
    exit_code = 7
    http_status = 422
    error_id = "release_failed"

    def __init__(self, process: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{process} {reason}")
        self.process = process
        self.reason = reason
        self.log_tail = log_tail


class EnvironmentProblem(GitpaasError):
    exit_code = 8
    http_status = 503
    error_id = "unavailable"
