"""Integration fixtures: every test gets its own gitpaas home (own port, own router, own labels);
whatever it leaves behind is removed by label, per test and again at the end of the session."""

from __future__ import annotations

import docker
import pytest

from gitpaas import labels
from gitpaas.build.addon_images import ADDON_STACK
from gitpaas.build.stack import stack_status
from gitpaas.stacks import DEFAULT_STACK, STACKS
from harness import Home


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory):
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"integration tests need the Docker engine (run scripts/setup.sh): {exc}")
    for name in (DEFAULT_STACK, ADDON_STACK):
        if stack_status(client, f"gitpaas/stack:{name}", STACKS[name]) == "missing":
            pytest.fail(f"the {name} stack image is missing: run `gitpaas stack:build {name}` (make test does)")
    base = str(tmp_path_factory.getbasetemp())
    yield client
    # Session sweep: anything labelled with a home under this session's temporary folder.
    for kind in (client.containers.list(all=True, filters={"label": labels.HOME}),
                 client.images.list(filters={"label": labels.HOME}),
                 client.networks.list(filters={"label": labels.HOME}),
                 client.volumes.list(filters={"label": labels.HOME})):
        for obj in kind:
            tags = obj.attrs.get("Labels") or obj.attrs.get("Config", {}).get("Labels") or {}
            if tags.get(labels.HOME, "").startswith(base):
                try:
                    obj.remove(force=True) if not isinstance(obj, docker.models.networks.Network) else obj.remove()
                except docker.errors.APIError:
                    pass


@pytest.fixture
def home(tmp_path, docker_client):
    made = Home.make(tmp_path)
    yield made
    made.purge()


@pytest.fixture
def other_home(tmp_path_factory, docker_client):
    made = Home.make(tmp_path_factory.mktemp("other"))
    yield made
    made.purge()


#: what the fault-injection tests (test_faults.py, test_reboot.py) did, summed up at the end of the run
FAULTS = {"injected": 0, "records checked": 0}


def pytest_terminal_summary(terminalreporter):
    if FAULTS["injected"]:
        terminalreporter.write_line("fault injection: " + ", ".join(f"{value} {key}" for key, value in FAULTS.items())
                                    + " (each test checks that nothing was lost)")
