"""Config changes, rollback, retry, retention, the operations and recovery on the shared in-memory
fakes: the records they leave and what runs afterwards."""

from __future__ import annotations

import threading

import pytest
from filelock import Timeout

from fakes import SLUG_ID, deploy, routed, running
from gitpaas import events, locks, operations, pipeline
from gitpaas.errors import ProcessNotFound, ReleaseFailed, UsageError
from gitpaas.formation import deployment
from gitpaas.identity import OPERATOR, Actor
from gitpaas.output import RecordingOutput
from gitpaas.release import FAILED, PENDING
from gitpaas.scheduler import RunResult

TYPES = {"web": "python3 app.py", "release": "./migrate"}


def release(platform, image="build-1"):
    return deploy(platform, TYPES, image=image)


def test_config_change_before_any_release_is_stored_without_a_release(platform):
    change = events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "1"})
    assert change.pending is None and change.changed and platform.apps.config("shop").get() == {"A": "1"}
    assert platform.apps.releases("shop").versions() == []


def test_config_change_that_changes_nothing_makes_no_release(platform):
    release(platform)
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "1"})
    again = events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "1"},
                                 unset_keys=["NOPE"])
    assert not again.changed and platform.apps.releases("shop").versions() == [1, 2]


def test_failed_config_release_keeps_the_change_and_the_old_processes(platform):
    release(platform)
    platform.scheduler.run_result = RunResult(exit_status=2)
    with pytest.raises(ReleaseFailed):
        events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "1"})
    assert platform.apps.config("shop").get() == {"A": "1"}
    assert platform.apps.get("shop").current_release == 1
    assert {p.release_version for p in platform.scheduler.running} == {1}


def test_the_acting_account_is_the_release_user(platform):
    release(platform)
    change = events.change_config(platform, "shop", Actor("dev@example.com"), RecordingOutput(),
                                  set_values={"A": "1"})
    assert change.pending.release.user["email"] == "dev@example.com"
    assert platform.apps.releases("shop").get(2).user["email"] == "dev@example.com"


def test_a_begun_release_holds_the_lock_until_another_thread_finishes_it(platform):
    """The API's path: the request thread records vN pending, a background thread finishes it."""
    release(platform)
    pending = events.begin_retry(platform, "shop", Actor("dev@example.com"), RecordingOutput())
    assert platform.apps.releases("shop").get(2).status == PENDING
    with pytest.raises(Timeout):  # nobody else may change the app meanwhile
        platform.apps.release_lock("shop").acquire(blocking=False)
    finisher = threading.Thread(target=pending.finish, args=(RecordingOutput(),))
    finisher.start()
    finisher.join(10)
    assert platform.apps.releases("shop").get(2).status == "succeeded"
    with locks.release_lock(platform, "shop"):  # released by the finishing thread
        pass


def test_an_error_before_the_release_exists_lets_the_lock_go(platform):
    with pytest.raises(UsageError, match="no release to roll back from"):
        events.begin_rollback(platform, "shop", OPERATOR, RecordingOutput())
    with locks.release_lock(platform, "shop"):
        pass


def test_rollback_copies_slug_and_config_and_skips_ineligible(platform):
    release(platform, "build-1")
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "1"})   # v2
    platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(ReleaseFailed):
        release(platform, "build-3")                                                          # v3 failed
    platform.scheduler.run_result = RunResult(exit_status=0)
    rolled = events.rollback(platform, "shop", OPERATOR, RecordingOutput())
    assert rolled.description == "Rollback to v1" and rolled.config_vars == {}
    assert platform.slugs.image_id(rolled.image) == "sha256:build-1"
    assert platform.apps.config("shop").get() == {}
    with pytest.raises(UsageError, match="v3 failed"):
        events.rollback(platform, "shop", OPERATOR, RecordingOutput(), 3)


def test_retry_reuses_the_latest_release(platform):
    release(platform)
    retried = events.retry(platform, "shop", OPERATOR, RecordingOutput())
    assert retried.description == "Retry of v1" and retried.version == 2
    assert platform.slugs.image_id(retried.image) == "sha256:build-1"


def test_a_slug_release_uses_the_current_config(platform):
    release(platform)
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"A": "2"})
    made = events.begin_slug_release(platform, "shop", OPERATOR, RecordingOutput(), SLUG_ID).finish(RecordingOutput())
    assert (made.version, made.config_vars, made.description) == (3, {"A": "2"}, "Release of slug 01234567")
    with pytest.raises(UsageError, match="no slug nope"):
        events.begin_slug_release(platform, "shop", OPERATOR, RecordingOutput(), "nope")


# --- retention -----------------------------------------------------------------------------------


def test_retention_prunes_unused_old_slugs(platform):
    for number in range(1, 5):
        release(platform, f"build-{number}")
    platform.scheduler.finish_retiring()
    assert operations.set_retention(platform, "shop", 2) == [2, 1]
    records = {r.version: r for r in platform.apps.releases("shop").list()}
    assert records[1].slug_pruned and not records[1].eligible_for_rollback
    assert not platform.slugs.exists(records[1].image) and platform.slugs.exists(records[3].image)
    with pytest.raises(UsageError, match="pruned"):
        events.rollback(platform, "shop", OPERATOR, RecordingOutput(), 1)
    with pytest.raises(UsageError, match="at least 1"):
        operations.set_retention(platform, "shop", 0)


def test_processes_still_being_retired_do_not_keep_their_release_eligible(platform):
    """--keep 2 leaves exactly the current and the previous release eligible for rollback, even
    while old processes are still being stopped in the background."""
    operations.set_retention(platform, "shop", 2)
    for number in range(1, 5):
        release(platform, f"build-{number}")
    assert running(platform) == ["web.1@v1 stopping", "web.1@v2 stopping", "web.1@v3 stopping", "web.1@v4"]
    eligible = [r.version for r in platform.apps.releases("shop").list() if r.eligible_for_rollback]
    assert eligible == [4, 3]


# --- operations ----------------------------------------------------------------------------------


def test_restart_replaces_the_chosen_processes_through_one_deploy(platform):
    release(platform)
    operations.scale(platform, "shop", {"web": 2})
    assert operations.restart(platform, "shop", "web.2") == ["web.2"]
    assert platform.scheduler.deployments[-1].replace == frozenset({"web.2"})
    assert running(platform) == ["web.1@v1", "web.2@v1", "web.2@v1 stopping"]
    with pytest.raises(ProcessNotFound, match="no process 'web.9' is running for shop"):
        operations.restart(platform, "shop", "web.9")


def test_ps_stop_kills_a_one_off_and_restarts_a_formation_process(platform):
    release(platform)
    platform.scheduler.add_one_off("shop", "release", 4821, 2)
    assert operations.stop_process(platform, "shop", "release.4821") == "stopped"
    assert platform.scheduler.killed == ["release.4821"]
    assert operations.stop_process(platform, "shop", "web.1") == "restarted"
    with pytest.raises(ProcessNotFound):
        operations.stop_process(platform, "shop", "release.1")


def test_a_domain_is_routed_without_restarting_anything(platform):
    release(platform)
    started = len(platform.scheduler.started)
    assert operations.add_domain(platform, "shop", "WWW.Example.com.") == ["shop.localhost", "www.example.com"]
    assert platform.router.routes["shop"][0] == ["shop.localhost", "www.example.com"]
    assert len(platform.scheduler.started) == started and routed(platform) == [1]
    operations.create_app(platform, "other")
    with pytest.raises(UsageError, match="already routed to shop"):
        operations.add_domain(platform, "other", "www.example.com")


def test_scale_refuses_what_cannot_be_scaled(platform):
    with pytest.raises(UsageError, match="no release yet"):
        operations.scale(platform, "shop", {"web": 1})
    release(platform)
    with pytest.raises(UsageError, match="cannot be scaled"):
        operations.scale(platform, "shop", {"release": 1})
    with pytest.raises(UsageError, match="no process type 'worker'"):
        operations.scale(platform, "shop", {"worker": 1})
    with pytest.raises(UsageError, match="between 0 and 100"):
        operations.scale(platform, "shop", {"web": 101})


def test_destroy_removes_processes_slugs_route_and_records(platform):
    release(platform)
    operations.destroy_app(platform, "shop")
    assert platform.scheduler.destroyed == ["shop"]
    assert not [tag for tag in platform.slugs.tags if "/shop:" in tag], "every vN tag of the app is gone"
    assert "shop" not in platform.router.routes and not platform.apps.exists("shop")


# --- recovery ------------------------------------------------------------------------------------


def test_an_orphaned_pending_release_is_settled(platform):
    release(platform)
    app = platform.apps.get("shop")
    orphan = pipeline.create_release(platform, app, OPERATOR, description="Deploy x", source_image="build-1",
                                     slug_id=SLUG_ID, commit=None, process_types=dict(TYPES), config_vars={})
    platform.scheduler.deploy(deployment(platform.settings, app, orphan, {"web": 1}), RecordingOutput())  # half a swap
    output = RecordingOutput()
    assert locks.recover(platform, "shop", output) == [2]
    record = platform.apps.releases("shop").get(2)
    assert record.status == FAILED and record.failure["reason"] == locks.INTERRUPTED
    assert {p.release_version for p in platform.scheduler.running if not p.retiring} == {1}
    assert routed(platform) == [1]
    assert "v2 never finished" in output.text
    assert locks.recover(platform, "shop", RecordingOutput()) == []


def test_a_pending_release_whose_lock_is_held_is_left_alone(platform):
    release(platform)
    app = platform.apps.get("shop")
    pipeline.create_release(platform, app, OPERATOR, description="Deploy y", source_image="build-1",
                            slug_id=SLUG_ID, commit=None, process_types=dict(TYPES), config_vars={})
    with platform.apps.release_lock("shop"):  # another process, mid-release
        assert locks.recover(platform, "shop", RecordingOutput()) == []
    assert platform.apps.releases("shop").get(2).status == PENDING
