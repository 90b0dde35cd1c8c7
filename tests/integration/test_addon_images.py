"""The add-on images on their own, as throwaway containers (testcontainers), reached from the host
with the client libraries apps use (psycopg, redis-py) through the very URLs gitpaas hands apps:
credentials set on the first start, enforced, and kept with the data on the volume."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import redis
from testcontainers.core.container import DockerContainer

from gitpaas import labels
from gitpaas.addons.plans import POSTGRESQL, REDIS
from gitpaas.addons.runtime import readiness
from gitpaas.build.addon_images import ADDON_STACK, RECIPES, ensure_image
from gitpaas.settings import Settings

#: a password with what a URL must quote (gitpaas's own are URL-safe; a restore may bring others)
ODD_PASSWORD = "p@ss/w:rd %é?"


@pytest.fixture
def volume(docker_client, tmp_path):
    """A named volume labelled with this test's home, removed afterwards."""
    made = docker_client.volumes.create(f"gitpaas-test-{uuid.uuid4().hex[:10]}", labels={labels.HOME: str(tmp_path / "home")})
    yield made.name
    made.remove(force=True)


def service_container(docker_client, tmp_path, service: str, volume: str, env: dict[str, str]) -> DockerContainer:
    image = ensure_image(docker_client, service, print, Settings.from_env({"GITPAAS_HOME": str(tmp_path)}).stack_image(ADDON_STACK))
    container = (DockerContainer(image).with_envs(**env).with_exposed_ports(service_port(service))
                 .with_volume_mapping(volume, RECIPES[service].data_dir, "rw")
                 .with_kwargs(labels={labels.HOME: str(tmp_path / "home")}))
    return container


def service_port(service: str) -> int:
    return POSTGRESQL.port if service == "postgresql" else REDIS.port


def wait_ready(container: DockerContainer, check: tuple[list[str], dict[str, str]], timeout: float = 120.0) -> None:
    argv, env = check
    deadline = time.monotonic() + timeout
    while container.get_wrapped_container().exec_run(argv, environment=env).exit_code != 0:
        assert time.monotonic() < deadline, container.get_logs()
        time.sleep(0.2)


def host_url(container: DockerContainer, url: str, service: str) -> str:
    """The URL gitpaas gives apps, pointed at the container's published port instead."""
    port = service_port(service)
    return url.replace(f"@db:{port}", f"@127.0.0.1:{container.get_exposed_port(port)}")


def test_postgresql_image_takes_its_credentials_once_and_keeps_its_data(docker_client, tmp_path, volume):
    credentials = {"user": "app_user", "password": ODD_PASSWORD, "database": "app_db"}
    env = {"POSTGRES_USER": "app_user", "POSTGRES_PASSWORD": ODD_PASSWORD, "POSTGRES_DB": "app_db"}
    url = POSTGRESQL.url(credentials["user"], ODD_PASSWORD, "db", "app_db")
    with service_container(docker_client, tmp_path, "postgresql", volume, env) as first:
        wait_ready(first, readiness("postgresql", credentials))
        assert first.get_wrapped_container().exec_run(["id", "-un"]).output.decode().strip() == "postgres"
        with psycopg.connect(host_url(first, url, "postgresql")) as connection:
            assert connection.execute("SELECT current_user, current_database(), "
                                      "pg_encoding_to_char(encoding) FROM pg_database "
                                      "WHERE datname = current_database()").fetchone() == ("app_user", "app_db", "UTF8")
            # the app's role owns its database, and is no superuser (COPY … FROM PROGRAM would run commands)
            assert connection.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (
                False,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute("COPY (SELECT 1) TO PROGRAM 'id'")
            connection.rollback()
            connection.execute("CREATE TABLE kept (word text)")
            connection.execute("INSERT INTO kept VALUES ('still here')")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host_url(first, url.replace("%40", "%41"), "postgresql"), connect_timeout=5)

    # A new container on the same volume: the data and the first start's credentials, not the new env's.
    env["POSTGRES_PASSWORD"] = "another"
    with service_container(docker_client, tmp_path, "postgresql", volume, env) as second:
        wait_ready(second, readiness("postgresql", credentials))
        with psycopg.connect(host_url(second, url, "postgresql")) as connection:
            assert connection.execute("SELECT word FROM kept").fetchall() == [("still here",)]


def test_redis_image_requires_its_password_and_keeps_its_data(docker_client, tmp_path, volume):
    url = REDIS.url("", ODD_PASSWORD, "db", "")
    with service_container(docker_client, tmp_path, "redis", volume, {"REDIS_PASSWORD": ODD_PASSWORD}) as first:
        wait_ready(first, readiness("redis", {"password": ODD_PASSWORD}))
        client = redis.Redis.from_url(host_url(first, url, "redis"))
        client.set("greeting", "hello")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=int(first.get_exposed_port(REDIS.port))).get("greeting")
        assert first.get_wrapped_container().exec_run(["id", "-un"]).output.decode().strip() == "redis"
    with service_container(docker_client, tmp_path, "redis", volume, {"REDIS_PASSWORD": "ignored"}) as second:
        wait_ready(second, readiness("redis", {"password": ODD_PASSWORD}))
        assert redis.Redis.from_url(host_url(second, url, "redis")).get("greeting") == b"hello"
