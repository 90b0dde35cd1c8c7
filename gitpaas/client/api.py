"""A Platform API client for the gitpaas CLI on another machine: JSON in and out with the login's
token, the server's errors turned back into GitpaasErrors (the same one line and exit code the
command gives on the server), and streams (release output, log sessions) read as they come.

Requests ask for gitpaas's variant of the API's shapes (``VARIANT``): the same resources with the
fields gitpaas records beyond Heroku's (a release's failure and timings, a process's restarts), so
the CLI prints the same thing on the server and off it."""

from __future__ import annotations

import os
from typing import Any, Iterator

import requests

from gitpaas.client.credentials import Login
from gitpaas.errors import EnvironmentProblem, GitpaasError, Unauthorized

#: the Accept header of gitpaas's own variant (Heroku names its variants ``version=3.<name>`` too)
VARIANT = "application/vnd.heroku+json; version=3.gitpaas"
#: seconds to connect, and to wait for an answer (a deploy-sized request: a release's first half)
TIMEOUTS = (10, 300)


def _exit_codes() -> dict[str, int]:
    """Each error id the server sends → the exit code the same error has on the server's CLI."""
    found: dict[str, int] = {}
    pending = [GitpaasError]
    while pending:
        cls = pending.pop(0)
        found.setdefault(cls.error_id, cls.exit_code)
        pending.extend(cls.__subclasses__())
    return found


_BY_STATUS = {400: 2, 401: 9, 403: 9, 404: 3, 409: 4, 413: 2, 422: 2, 503: 8}


class RemoteError(GitpaasError):
    """A failure the server answered with: its message, and the exit code the command has there."""

    def __init__(self, message: str, error_id: str, status: int) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.http_status = status
        self.exit_code = _exit_codes().get(error_id) or _BY_STATUS.get(status, 1)


class Api:
    def __init__(self, login: Login) -> None:
        self.login = login
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {login.token}", "Accept": VARIANT,
                                     "User-Agent": "gitpaas-cli"})
        self.session.trust_env = False  # a proxy from the environment would see the token
        # a server whose certificate a private CA signed: REQUESTS_CA_BUNDLE names that CA, as for requests
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        if bundle:
            self.session.verify = bundle

    def url(self, path: str) -> str:
        return self.login.server + path

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                stream: bool = False) -> requests.Response:
        return self._send(self.session, method, self.url(path), self.login.server, json=body, headers=headers,
                          timeout=TIMEOUTS if not stream else (TIMEOUTS[0], None), stream=stream)

    def _send(self, sender, method: str, url: str, where: str, **options: Any) -> requests.Response:
        """One request (``sender``: the login's session, or ``requests`` for another origin, which
        gets no token); what cannot reach ``where`` or is refused becomes one GitpaasError."""
        try:
            response = sender.request(method, url, **options)
        except requests.exceptions.SSLError as exc:
            raise EnvironmentProblem(f"cannot reach the gitpaas server at {where}: its TLS certificate "
                                     f"is not trusted ({_reason(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise EnvironmentProblem(f"cannot reach the gitpaas server at {where} ({_reason(exc)})") from None
        if response.status_code >= 400:
            raise self._failure(response)
        return response

    def _failure(self, response: requests.Response) -> GitpaasError:
        try:
            data = response.json()
            message, error_id = str(data["message"]), str(data.get("id", ""))
        except (ValueError, KeyError, TypeError):
            message, error_id = f"the server answered {response.status_code} {response.reason}", ""
        if response.status_code == 401:
            return Unauthorized(f"{self.login.server} did not accept your token ({message}): "
                                "log in again with `gitpaas login`")
        return RemoteError(message, error_id, response.status_code)

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.json(self.request("GET", path, headers=headers))

    def post(self, path: str, body: Any = None) -> Any:
        return self.json(self.request("POST", path, body if body is not None else {}))

    def patch(self, path: str, body: Any) -> Any:
        return self.json(self.request("PATCH", path, body))

    def delete(self, path: str) -> Any:
        response = self.request("DELETE", path)
        return self.json(response) if response.content else None

    def json(self, response: requests.Response) -> Any:
        """The answer's JSON; an answer that is none (a web page at that address) is one line."""
        try:
            return response.json()
        except ValueError:
            raise EnvironmentProblem(f"{self.login.server} answered with something that is not gitpaas's API "
                                     "(not JSON): is that the address of `gitpaas server`?") from None

    def stream(self, url: str) -> Iterator[bytes]:
        """The body of a stream URL (signed: it needs no token) as its chunks come."""
        if url.startswith(self.login.server + "/"):
            response = self.request("GET", url[len(self.login.server):], stream=True)
        else:  # on another origin than the login's (a server published under another name): no token
            response = self._send(requests, "GET", url, url.split("/streams/")[0], stream=True,
                                  timeout=(TIMEOUTS[0], None))
        with response:
            try:
                yield from response.iter_content(chunk_size=None)
            except requests.exceptions.RequestException as exc:
                raise EnvironmentProblem(f"the connection to {self.login.server} was lost ({_reason(exc)})") from None

    def lines(self, url: str) -> Iterator[str]:
        """A Server-Sent Events stream's ``data:`` lines (a log session)."""
        buffer = b""
        for chunk in self.stream(url):
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                if raw.startswith(b"data: "):
                    yield raw[6:].decode("utf-8", "replace")


def _reason(exc: Exception) -> str:
    """requests' nested reasons, shortened to the last one (``Connection refused``)."""
    text = str(exc)
    for marker in ("] ", ": "):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip("()'\" ") or type(exc).__name__

