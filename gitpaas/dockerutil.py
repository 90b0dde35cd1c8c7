"""The one place a Docker client is made, and the one place Docker's exceptions are translated.

docker-py raises its own ``DockerException`` family for what the engine answers and ``requests``
exceptions when the engine cannot be reached; every gitpaas module that calls the engine wraps
its public operations with :func:`engine_call` (or a block with :func:`engine_errors`), so the
shells only ever see :class:`~gitpaas.errors.GitpaasError`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TypeVar

import docker
import requests
from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
from docker.errors import APIError, DockerException, InvalidVersion
from docker.utils import version_lt

from gitpaas.errors import EnvironmentProblem, GitpaasError

# Long enough for a silent build step (a big pip install) between two streamed lines.
API_TIMEOUT = 3600
#: what talking to the engine can raise besides gitpaas's own errors
ENGINE_ERRORS = (DockerException, requests.RequestException)

F = TypeVar("F", bound=Callable)


def docker_client() -> docker.DockerClient:
    try:
        return negotiated_client()
    except ENGINE_ERRORS as exc:
        raise EnvironmentProblem(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); "
            "run scripts/setup.sh or start dockerd"
        ) from exc


def negotiated_client(base_url: str | None = None, tls: docker.tls.TLSConfig | None = None,
                      timeout: int = API_TIMEOUT) -> docker.DockerClient:
    """A client of the engine at ``base_url`` (else the environment's, as ``docker.from_env``)
    that speaks the newest API version both it and docker-py know, found as Docker's own command
    line finds it: from the ``Api-Version`` header of an unversioned ``/_ping``. docker-py's own
    negotiation asks ``/version`` instead, which the engine answers by running ``runc --version``
    and ``docker-init --version``: 8 ms here against 1.5 ms, in every process that talks to the
    engine (a push, a command, a retirer). The ping also says the engine answers, on the
    connection the client goes on with. An engine that sends no such header (or one that does not
    read as a version) is asked docker-py's way. Raises what docker-py and requests raise, and
    EnvironmentProblem for an engine older than docker-py supports.

    (docker-py has no public call for this: the ping goes through its own request helpers, so it
    sends the headers of ``~/.docker/config.json`` and fails as ``APIError``, and the version is
    set as docker-py's constructor sets it.)"""
    def client(version: str | None) -> docker.DockerClient:
        if base_url is None:
            return docker.from_env(timeout=timeout, version=version)
        return docker.DockerClient(base_url=base_url, timeout=timeout, tls=tls, version=version)

    newest = DEFAULT_DOCKER_API_VERSION
    made = client(newest)  # (a version given: nothing is asked of the engine yet)
    try:
        answer = made.api._get(made.api._url("/_ping", versioned_api=False), timeout=min(timeout, 60))
        made.api._raise_for_status(answer)
        server = answer.headers.get("Api-Version") or ""
        older = too_old = False
        if server:
            try:
                older = version_lt(server, newest)
                too_old = version_lt(server, MINIMUM_DOCKER_API_VERSION)
            except ValueError:
                server = ""  # (not a version: let docker-py ask)
    except BaseException:
        made.close()
        raise
    if not server:
        made.close()
        try:
            return client(None)
        except InvalidVersion as exc:  # (an engine too old to name its version in a ping)
            raise _too_old(str(exc).rstrip(".")) from exc
    if too_old:
        made.close()
        raise _too_old(f"it speaks API {server}, the client {MINIMUM_DOCKER_API_VERSION} and newer")
    made.api._version = server if older else newest
    return made


def _too_old(detail: str) -> EnvironmentProblem:
    return EnvironmentProblem(f"the Docker engine is too old for gitpaas's Docker client ({detail}): upgrade Docker")


def swarm_client(manager: str, cert_path: str = "") -> docker.DockerClient:
    """A client of the swarm's manager engine (``unix:///…``, or ``tcp://HOST:2376`` with TLS from
    ``cert_path``: Docker's ``ca.pem``, ``cert.pem`` and ``key.pem``), checked to be a manager."""
    if not manager:
        raise EnvironmentProblem("the swarm scheduler needs its manager: gitpaas scheduler:set swarm --manager URL")
    try:
        tls = docker.tls.TLSConfig(client_cert=(f"{cert_path}/cert.pem", f"{cert_path}/key.pem"),
                                   ca_cert=f"{cert_path}/ca.pem", verify=True) if cert_path else None
        client = negotiated_client(manager, tls)
        swarm = client.info().get("Swarm") or {}
    except ENGINE_ERRORS as exc:
        raise EnvironmentProblem(f"cannot reach the swarm manager's engine ({exc.__class__.__name__}); "
                                 "is it running, and is the manager URL right?") from exc
    if not swarm.get("ControlAvailable"):
        raise EnvironmentProblem("the swarm manager's engine is not a swarm manager "
                                 f"(its swarm state: {swarm.get('LocalNodeState') or 'inactive'})")
    return client


def describe(exc: BaseException) -> str:
    """What went wrong, in the engine's own words where it gave any."""
    if isinstance(exc, APIError):
        return str(exc.explanation or exc)
    if isinstance(exc, requests.ConnectionError):
        return "the Docker engine cannot be reached (is dockerd running?)"
    return str(exc) or exc.__class__.__name__


@contextlib.contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Raise what Docker raises inside the block as EnvironmentProblem("Docker engine: DOING: …")."""
    try:
        yield
    except GitpaasError:
        raise
    except ENGINE_ERRORS as exc:
        raise EnvironmentProblem(f"Docker engine: {doing}: {describe(exc)}") from exc


def engine_call(doing: str) -> Callable[[F], F]:
    """Decorate a method that talks to the engine (a generator too) with :func:`engine_errors`."""
    def decorate(function: F) -> F:
        if inspect.isgeneratorfunction(function):
            @functools.wraps(function)
            def generator(*args, **kwargs):
                with engine_errors(doing):
                    yield from function(*args, **kwargs)
            return generator  # type: ignore[return-value]

        @functools.wraps(function)
        def call(*args, **kwargs):
            with engine_errors(doing):
                return function(*args, **kwargs)
        return call  # type: ignore[return-value]
    return decorate
