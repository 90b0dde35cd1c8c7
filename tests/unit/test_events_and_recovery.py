"""Config changes, rollback, retry, retention, the operations and recovery on the shared in-memory
fakes: the records they leave and what runs afterwards."""

from __future__ import annotations

import stat
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


def test_the_api_answers_with_the_pending_release_and_the_next_request_waits_for_it(platform):
    """The API's path: vN is recorded pending and answered at once; its release phase goes on, holding
    the app's lock; a later request for the same app (in the same request thread) waits, no deadlock."""
    from gitpaas.api.core import release_in_background

    release(platform)
    platform.scheduler.run_gate = gate = threading.Event()

    def begin(said):
        pending = events.begin_retry(platform, "shop", Actor("dev@example.com"), said)
        return pending.release, pending
    answer = release_in_background("shop", begin)
    assert (answer.version, answer.status) == (2, PENDING)
    story = platform.apps.releases("shop").story_path(2)
    assert story.exists(), "its story is there to follow as soon as the answer is"
    with pytest.raises(Timeout):  # nobody else may change the app meanwhile
        platform.apps.release_lock("shop").acquire(blocking=False)
    threading.Timer(0.2, gate.set).start()
    with locks.release_lock(platform, "shop"):  # waits for the release's own thread to let it go
        assert platform.apps.releases("shop").get(2).status == "succeeded"
    assert answer.status == PENDING, "the answer was a copy"
    told = story.read_text()
    assert "-----> Release v2 created (Retry of v1)" in told and "Release command succeeded (exit 0)" in told
    assert stat.S_IMODE(story.stat().st_mode) == 0o600


def test_an_error_before_the_api_release_exists_is_the_requests(platform):
    from gitpaas.api.core import release_in_background

    def begin(said):
        pending = events.begin_rollback(platform, "shop", OPERATOR, said)
        return pending.release, pending
    with pytest.raises(UsageError, match="no release to roll back from"):
        release_in_background("shop", begin)
    with locks.release_lock(platform, "shop"):
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


@pytest.mark.parametrize("host, why", [
    ("api.localhost", "names this machine"),
    ("localhost", "names this machine"),
    ("other.localhost", "names this machine"),
    ("*.localhost", "names this machine"),
])
def test_domains_that_would_take_over_another_app_or_the_api_are_refused(platform, host, why):
    release(platform)
    with pytest.raises(UsageError, match=why):
        operations.add_domain(platform, "shop", host)
    assert platform.apps.get("shop").domains == []


def test_names_under_the_servers_domain_and_wildcards_covering_it_are_refused(tmp_path):
    from gitpaas.names import validate_custom_domain

    for host in ("api.apps.example.com", "acme.apps.example.com", "*.apps.example.com", "apps.example.com"):
        with pytest.raises(UsageError, match="whose names are gitpaas's own"):
            validate_custom_domain(host, "apps.example.com")
    for host in ("*.example.com", "*.com"):
        with pytest.raises(UsageError, match="would take every app's APP.apps.example.com address"):
            validate_custom_domain(host, "apps.example.com")
    assert validate_custom_domain("*.shop.example.org", "apps.example.com") == "*.shop.example.org"


def test_an_app_cannot_be_named_after_another_apps_custom_domain(platform):
    app = platform.apps.get("shop")
    app.domains.append("acme.localhost")  # added by a gitpaas from before the rule above
    platform.apps.save(app)
    with pytest.raises(UsageError, match="acme.localhost is a custom domain of shop"):
        operations.create_app(platform, "acme")
    assert not platform.apps.exists("acme")


def test_ps_type_sizes_types_and_the_release_phase(platform):
    release(platform)
    assert operations.resize(platform, "shop", {"web": "Standard-2X"}) == {"web": "standard-2x",
                                                                          "release": "standard-1x"}
    assert platform.scheduler.deployments[-1].sizes == {"web": "standard-2x"}
    assert operations.resize(platform, "shop", {"release": "eco"})["release"] == "eco"
    with pytest.raises(UsageError, match="no dyno size 'huge'"):
        operations.resize(platform, "shop", {"web": "huge"})
    with pytest.raises(UsageError, match="no process type 'clock'"):
        operations.resize(platform, "shop", {"clock": "eco"})
    deploy(platform, {"web": "python3 app.py"}, image="build-2")  # a release without a release phase
    with pytest.raises(UsageError, match="no release phase yet"):
        operations.resize(platform, "shop", {"release": "eco"})
    (job, _), *_ = [run for run in platform.scheduler.runs]
    assert job.size is None  # the first release command ran at the default size


def test_boot_settles_reconciles_and_converges_and_a_second_boot_does_nothing(platform):
    from gitpaas.boot import boot

    platform._engine = object()  # (the engine "answers": boot waits for it first)
    release(platform)
    operations.scale(platform, "shop", {"web": 2})
    release(platform, "build-2")  # v1's processes are now being retired
    app = platform.apps.get("shop")
    pipeline.create_release(platform, app, OPERATOR, description="Deploy x", source_image="build-1",
                            slug_id=SLUG_ID, commit=None, process_types=dict(TYPES), config_vars={})  # v3: orphaned
    platform.scheduler.running = [p for p in platform.scheduler.running if p.name != "web.2"]  # gone in the reboot
    platform.router.stop()

    output = RecordingOutput()
    done = boot(platform, output, engine_wait=0)
    assert done[0] == "started the router on port 8080"
    assert any("v3 never finished" in line for line in done)
    assert "shop: the formation runs v2, the last good release" in done  # (settling v3 brought web.2 back)
    assert "shop: removed web.1" in done  # v1's, whose retirement the reboot interrupted
    assert running(platform) == ["web.1@v2", "web.2@v2"] and routed(platform) == [2, 2]
    assert platform.apps.releases("shop").get(3).status == FAILED
    assert "started the router" in (platform.settings.home / "logs" / "boot.log").read_text()

    again = RecordingOutput()
    assert boot(platform, again, engine_wait=0) == []
    assert again.lines == ["       Everything was running already: nothing to do"]


def test_an_exact_host_inside_another_apps_wildcard_is_refused(platform):
    operations.create_app(platform, "blog")
    operations.add_domain(platform, "blog", "*.example.org")
    with pytest.raises(UsageError, match="www.example.org is covered by \\*.example.org, a domain of blog"):
        operations.add_domain(platform, "shop", "www.example.org")
    assert operations.add_domain(platform, "blog", "www.example.org")[-1] == "www.example.org", "its own: fine"

