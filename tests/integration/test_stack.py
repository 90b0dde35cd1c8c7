"""The real stack image in the real engine: built (once) from Debian packages, then reused.

The image is shared by every gitpaas home on the machine and takes a minute or two to build, so
the tests build it only when it is missing or outdated and never remove it. Set
GITPAAS_TEST_REBUILD_STACK=1 to force a full rebuild. The containers they run carry a test label
and are removed as they exit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import docker
import pytest

from gitpaas import labels
from gitpaas.build.stack import CA_BUNDLE, RUNTIMES_LABEL, build_stack, stack_fingerprint, stack_status
from gitpaas.stacks import DEFAULT_STACK, STACKS

STACK = STACKS[DEFAULT_STACK]
IMAGE = f"gitpaas/stack:{DEFAULT_STACK}"

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
        client, STACK, IMAGE, lines.append,
        force=os.environ.get("GITPAAS_TEST_REBUILD_STACK") == "1",
    )
    return IMAGE


def run_in(client, image: str, script: str) -> str:
    output = client.containers.run(image, ["bash", "-c", script], remove=True, labels=TEST_LABELS)
    return output.decode().strip()


def test_image_carries_the_fingerprint(client, stack_image):
    image = client.images.get(stack_image)
    assert image.labels[labels.STACK] == stack_fingerprint(STACK)
    assert stack_status(client, stack_image, STACK) == "current"
    assert image.attrs["Config"]["WorkingDir"] == "/app"


def test_python_and_node_run_in_the_image_as_its_label_says(client, stack_image):
    recorded = json.loads(client.images.get(stack_image).labels[RUNTIMES_LABEL])
    version = run_in(client, stack_image, "python3 -c 'import ssl,venv,platform;print(platform.python_version())'")
    assert recorded["python"] == {STACK.pythons[0]: version} and version.startswith(STACK.pythons[0] + ".")
    assert run_in(client, stack_image, "node --version") == f"v{recorded['node']}"
    assert run_in(client, stack_image, "npm --version")[0].isdigit()


def test_image_trusts_the_hosts_ca_bundle(client, stack_image):
    inside = run_in(client, stack_image, f"sha256sum {CA_BUNDLE} | cut -d' ' -f1; echo $SSL_CERT_FILE")
    host = hashlib.sha256(Path(CA_BUNDLE).read_bytes()).hexdigest()
    assert inside.split() == [host, CA_BUNDLE]


def test_second_build_reuses_the_image(client, stack_image):
    before = client.images.get(stack_image).id
    lines: list[str] = []
    assert build_stack(client, STACK, stack_image, lines.append) is False
    assert "reusing" in lines[-1]
    assert client.images.get(stack_image).id == before
