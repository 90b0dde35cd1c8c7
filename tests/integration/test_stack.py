"""The real stack image in the real engine: built (once) from Debian packages, then reused.

The image is shared by every gitpaas home on the machine and takes a minute or two to build, so
the tests build it only when it is missing or outdated and never remove it. Set
GITPAAS_TEST_REBUILD_STACK=1 to force a full rebuild. The containers they run carry a test label
and are removed as they exit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import docker
import pytest

from gitpaas import labels
from gitpaas.build.stack import CA_BUNDLE, build_stack, stack_fingerprint, stack_status
from gitpaas.settings import DEFAULT_STACK_IMAGE

pytestmark = pytest.mark.integration

TEST_LABELS = {"gitpaas.test": "test_stack"}


@pytest.fixture(scope="module")
def client():
    client = docker.from_env()
    yield client
    for container in client.containers.list(all=True, filters={"label": "gitpaas.test=test_stack"}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="module")
def stack_image(client) -> str:
    lines: list[str] = []
    build_stack(
        client, DEFAULT_STACK_IMAGE, lines.append,
        force=os.environ.get("GITPAAS_TEST_REBUILD_STACK") == "1",
    )
    return DEFAULT_STACK_IMAGE


def run_in(client, image: str, script: str) -> str:
    output = client.containers.run(image, ["bash", "-c", script], remove=True, labels=TEST_LABELS)
    return output.decode().strip()


def test_image_carries_the_fingerprint(client, stack_image):
    image = client.images.get(stack_image)
    assert image.labels[labels.STACK] == stack_fingerprint()
    assert stack_status(client, stack_image) == "current"
    assert image.attrs["Config"]["WorkingDir"] == "/app"


def test_python_and_node_run_in_the_image(client, stack_image):
    assert run_in(client, stack_image, "python3 -c 'import ssl,venv;print(1)'") == "1"
    assert run_in(client, stack_image, "node --version").startswith("v")
    assert run_in(client, stack_image, "npm --version")[0].isdigit()


def test_image_trusts_the_hosts_ca_bundle(client, stack_image):
    inside = run_in(client, stack_image, f"sha256sum {CA_BUNDLE} | cut -d' ' -f1; echo $SSL_CERT_FILE")
    host = hashlib.sha256(Path(CA_BUNDLE).read_bytes()).hexdigest()
    assert inside.split() == [host, CA_BUNDLE]


def test_second_build_reuses_the_image(client, stack_image):
    before = client.images.get(stack_image).id
    lines: list[str] = []
    assert build_stack(client, stack_image, lines.append) is False
    assert "reusing" in lines[-1]
    assert client.images.get(stack_image).id == before
