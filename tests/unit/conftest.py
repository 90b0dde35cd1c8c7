"""Fixtures every unit test module shares: a platform on the in-memory fakes (see fakes.py)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from fakes import FakeRouter, FakeScheduler, make_platform
from gitpaas.cli.main import cli
from gitpaas.platform import Platform


@pytest.fixture
def platform(tmp_path) -> Platform:
    """A home in tmp_path with an app "shop", on fakes of the scheduler, router, slugs and builder."""
    made = make_platform(tmp_path)
    made.apps.create("shop")
    return made


@pytest.fixture
def scheduler(platform) -> FakeScheduler:
    return platform.scheduler


@pytest.fixture
def router(platform) -> FakeRouter:
    return platform.router


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def run(home):
    """Run ``gitpaas ARGS`` in-process as a user whose environment names the home (and no scheduler
    of its own); ``obj`` replaces the Platform."""
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(home), "GITPAAS_HTTP_PORT": "8080", "GITPAAS_DOMAIN": "localhost",
           "GITPAAS_SCHEDULER": "", "GITPAAS_SWARM_MANAGER": "", "GITPAAS_SWARM_REGISTRY": ""}

    def invoke(*args: str, obj: Platform | None = None) -> Result:
        return runner.invoke(cli, list(args), env=env, obj=obj)
    return invoke
