"""Config changes, rollback, retry, retention and recovery on in-memory fakes: the records they leave."""

from __future__ import annotations

import pytest

from fakes import FakeRouter, FakeScheduler, FakeSlugs
from gitpaas import events, pipeline, recovery
from gitpaas.errors import ReleaseFailed, UsageError
from gitpaas.output import RecordingOutput
from gitpaas.platform import Platform
from gitpaas.release import FAILED, PENDING
from gitpaas.scheduler import RunResult
from gitpaas.settings import Settings

SLUG = "01234567-89ab-4def-8123-456789abcdef"
TYPES = {"web": "python3 app.py", "release": "./migrate"}


@pytest.fixture
def platform(tmp_path):
    platform = Platform(Settings(home=tmp_path / "home", http_port=8080, startup_window=0), scheduler=FakeScheduler(),
                        router=FakeRouter(tmp_path / "routes"), docker_client=object(), slugs=FakeSlugs())
    platform.apps.create("shop")
    return platform


def deploy(platform, image="build-1"):
    platform.slugs.tags[image] = f"sha256:{image}"
    app = platform.apps.get("shop")
    release = pipeline.create_release(platform, app, description=f"Deploy {image}", source_image=image, slug_id=SLUG,
                                      commit=None, process_types=dict(TYPES), config_vars=platform.config.get("shop"))
    return pipeline.release_and_swap(platform, app, release, RecordingOutput())


def test_config_change_before_any_release_is_stored_without_a_release(platform):
    change = events.change_config(platform, "shop", RecordingOutput(), set_values={"A": "1"})
    assert change.release is None and change.changed and platform.config.get("shop") == {"A": "1"}
    assert platform.apps.releases("shop").versions() == []


def test_config_change_that_changes_nothing_makes_no_release(platform):
    deploy(platform)
    events.change_config(platform, "shop", RecordingOutput(), set_values={"A": "1"})
    again = events.change_config(platform, "shop", RecordingOutput(), set_values={"A": "1"}, unset_keys=["NOPE"])
    assert not again.changed and platform.apps.releases("shop").versions() == [1, 2]


def test_failed_config_release_keeps_the_change_and_the_old_processes(platform):
    deploy(platform)
    platform.scheduler.run_result = RunResult(exit_status=2)
    with pytest.raises(ReleaseFailed):
        events.change_config(platform, "shop", RecordingOutput(), set_values={"A": "1"})
    assert platform.config.get("shop") == {"A": "1"}
    assert platform.apps.get("shop").current_release == 1
    assert {p.release_version for p in platform.scheduler.running} == {1}


def test_rollback_copies_slug_and_config_and_skips_ineligible(platform):
    deploy(platform, "build-1")
    events.change_config(platform, "shop", RecordingOutput(), set_values={"A": "1"})   # v2
    platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(ReleaseFailed):
        deploy(platform, "build-3")                                                 # v3 failed
    platform.scheduler.run_result = RunResult(exit_status=0)
    release = events.rollback(platform, "shop", RecordingOutput())
    assert release.description == "Rollback to v1" and release.config_vars == {}
    assert platform.slugs.image_id(release.image) == "sha256:build-1"
    assert platform.config.get("shop") == {}
    with pytest.raises(UsageError, match="v3 failed"):
        events.rollback(platform, "shop", RecordingOutput(), 3)


def test_retry_reuses_the_latest_release(platform):
    deploy(platform)
    release = events.retry(platform, "shop", RecordingOutput())
    assert release.description == "Retry of v1" and release.version == 2
    assert platform.slugs.image_id(release.image) == "sha256:build-1"


def test_retention_prunes_unused_old_slugs(platform):
    for number in range(1, 5):
        deploy(platform, f"build-{number}")
    assert platform.set_retention("shop", 2) == [2, 1]
    records = {r.version: r for r in platform.apps.releases("shop").list()}
    assert records[1].slug_pruned and not records[1].eligible_for_rollback
    assert not platform.slugs.exists(records[1].image) and platform.slugs.exists(records[3].image)
    with pytest.raises(UsageError, match="pruned"):
        events.rollback(platform, "shop", RecordingOutput(), 1)
    with pytest.raises(UsageError, match="at least 1"):
        platform.set_retention("shop", 0)


def test_an_orphaned_pending_release_is_settled(platform):
    deploy(platform)
    app = platform.apps.get("shop")
    orphan = pipeline.create_release(platform, app, description="Deploy x", source_image="build-1", slug_id=SLUG,
                                     commit=None, process_types=dict(TYPES), config_vars={})
    platform.scheduler.start(pipeline.process_specs(app, orphan, {"web": 1}))  # half-started swap
    output = RecordingOutput()
    assert recovery.recover(platform, "shop", output, locked=False) == [2]
    record = platform.apps.releases("shop").get(2)
    assert record.status == FAILED and record.failure["reason"] == recovery.INTERRUPTED
    assert {p.release_version for p in platform.scheduler.running} == {1}
    assert "v2 never finished" in output.text
    assert recovery.recover(platform, "shop", RecordingOutput(), locked=False) == []


def test_a_pending_release_whose_lock_is_held_is_left_alone(platform):
    deploy(platform)
    app = platform.apps.get("shop")
    pipeline.create_release(platform, app, description="Deploy y", source_image="build-1", slug_id=SLUG,
                            commit=None, process_types=dict(TYPES), config_vars={})
    with platform.apps.release_lock("shop"):
        assert recovery.recover(platform, "shop", RecordingOutput(), locked=False) == []
    assert platform.apps.releases("shop").get(2).status == PENDING
