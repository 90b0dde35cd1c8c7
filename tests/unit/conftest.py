"""Fixtures every unit test module shares: a platform on the in-memory fakes (see fakes.py)."""

from __future__ import annotations

import pytest

from fakes import FakeRouter, FakeScheduler, make_platform
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
