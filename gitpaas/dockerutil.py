"""The one place a Docker client is made, and Docker's connection failures translated."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from gitpaas.errors import EnvironmentProblem

# Long enough for a silent build step (a big pip install) between two streamed lines.
API_TIMEOUT = 3600


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=API_TIMEOUT)
        client.ping()
    except DockerException as exc:
        raise EnvironmentProblem(
            f"cannot reach the Docker engine ({exc.__class__.__name__}); "
            "run scripts/setup.sh or start dockerd"
        ) from exc
    return client
