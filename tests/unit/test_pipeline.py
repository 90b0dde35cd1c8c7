"""The release half of the pipeline (release phase → swap → record) against an in-memory scheduler and router.

No build and no Docker: a release is created with ``pipeline.create_release`` for a made-up image,
then ``pipeline.release_and_swap`` runs it. The fakes keep what a user could observe: which
processes run, what the router sends traffic to, and the records on disk.
"""

from __future__ import annotations


import pytest

from gitpaas import pipeline
from gitpaas.errors import (
    BootFailed,
    BuildFailed,
    EnvironmentProblem,
    PushRefused,
    ReleaseFailed,
)
from gitpaas.output import RecordingOutput, explain_failure
from gitpaas.platform import Platform
from gitpaas.release import Release
from gitpaas.scheduler import RunResult
from gitpaas.settings import Settings
from fakes import FakeRouter, FakeScheduler, FakeSlugs

SLUG_ID = "01234567-89ab-4def-8123-456789abcdef"
PROCESS_TYPES = {"web": "python3 app.py", "worker": "python3 worker.py", "release": "./migrate.sh"}


@pytest.fixture
def scheduler() -> FakeScheduler:
    return FakeScheduler()


@pytest.fixture
def router(tmp_path) -> FakeRouter:
    return FakeRouter(tmp_path / "routes")


@pytest.fixture
def platform(tmp_path, scheduler, router) -> Platform:
    settings = Settings(home=tmp_path / "home", http_port=8080, release_timeout=9, boot_timeout=5, stop_timeout=3,
                        startup_window=0)
    platform = Platform(settings, scheduler=scheduler, router=router, docker_client=object(), slugs=FakeSlugs())
    platform.apps.create("shop")
    return platform


def deploy(platform: Platform, process_types=PROCESS_TYPES, config_vars=None, output=None) -> Release:
    app = platform.apps.get("shop")
    release = pipeline.create_release(
        platform, app, description="Deploy abc1234", source_image="gitpaas-test/shop:build-1", slug_id=SLUG_ID,
        commit="abc1234" + "0" * 33,
        process_types=dict(process_types), config_vars=config_vars or {})
    return pipeline.release_and_swap(platform, app, release, output or RecordingOutput())


def running(scheduler: FakeScheduler) -> list[str]:
    return sorted(f"{p.name}@v{p.release_version}" for p in scheduler.running)


def web_backends(scheduler: FakeScheduler, version: int) -> list[tuple[str, int]]:
    return [p.address for p in scheduler.running if p.type == "web" and p.release_version == version]


# --- success -----------------------------------------------------------------------------------


def test_first_release_runs_the_release_phase_then_serves(platform, scheduler, router):
    output = RecordingOutput()
    release = deploy(platform, config_vars={"DATABASE_URL": "postgres://db"}, output=output)

    record = platform.apps.releases("shop").get(1)
    assert (record.status, record.current, record.failure) == ("succeeded", True, None)
    assert record.eligible_for_rollback
    assert record.image == f"{platform.settings.image_repository('shop')}:v1"
    assert release.version == 1
    app = platform.apps.get("shop")
    assert app.current_release == 1
    assert app.formation == {"web": 1, "worker": 0}

    (spec, timeout), = scheduler.runs
    assert (spec.type, spec.command, spec.image, spec.release_version) == ("release", "./migrate.sh", record.image, 1)
    assert spec.env == {"DATABASE_URL": "postgres://db"}
    assert timeout == 9
    assert platform.apps.releases("shop").output_path(1).read_text() == "Migrating…\ndone\n"
    assert "       Migrating…" in output.lines

    assert running(scheduler) == ["web.1@v1"]
    assert router.routes["shop"] == (["shop.localhost"], web_backends(scheduler, 1))
    assert "       Routing http://shop.localhost:8080/ to v1 (1 web)" in output.lines


def test_second_release_replaces_the_first_and_clears_its_current_flag(platform, scheduler, router):
    deploy(platform)
    deploy(platform)
    releases = platform.apps.releases("shop")
    assert [(r.version, r.status, r.current) for r in releases.list()] == [(2, "succeeded", True), (1, "succeeded", False)]
    assert platform.apps.get("shop").current_release == 2
    assert running(scheduler) == ["web.1@v2"]
    assert scheduler.stopped == [(["web.1@v1"], 3)]  # the old processes, with the stop grace
    assert router.routes["shop"][1] == web_backends(scheduler, 2)


def test_scaled_quantities_are_kept_and_new_types_get_defaults(platform, scheduler):
    deploy(platform)
    platform.scale("shop", {"web": 2, "worker": 1})
    assert running(scheduler) == ["web.1@v1", "web.2@v1", "worker.1@v1"]

    deploy(platform, {"web": "python3 app.py", "worker": "python3 worker.py", "clock": "python3 clock.py"})

    assert platform.apps.get("shop").formation == {"web": 2, "worker": 1, "clock": 0}
    assert running(scheduler) == ["web.1@v2", "web.2@v2", "worker.1@v2"]


def test_a_type_dropped_from_the_procfile_leaves_the_formation(platform, scheduler):
    deploy(platform)
    platform.scale("shop", {"worker": 1})
    deploy(platform, {"web": "python3 app.py"})
    assert platform.apps.get("shop").formation == {"web": 1}
    assert running(scheduler) == ["web.1@v2"]


def test_no_release_command_skips_the_release_phase(platform, scheduler):
    output = RecordingOutput()
    deploy(platform, {"web": "python3 app.py"}, output=output)
    assert scheduler.runs == []
    assert "-----> No release command in the Procfile: skipping the release phase" in output.lines
    assert platform.apps.releases("shop").get(1).status == "succeeded"
    assert running(scheduler) == ["web.1@v1"]


def test_a_dockerfile_web_without_a_command_runs_the_image_default(platform, scheduler):
    deploy(platform, {"web": None})
    (web,) = scheduler.running
    assert web.command == ""  # the fake's rendering of "no command": the image's own
    assert platform.apps.get("shop").formation == {"web": 1}


def test_a_formation_without_web_routes_to_no_backend(platform, scheduler, router):
    deploy(platform, {"worker": "python3 worker.py"})
    assert platform.apps.get("shop").formation == {"worker": 0}
    assert scheduler.running == []
    assert router.routes["shop"] == (["shop.localhost"], [])


def test_a_stale_app_record_does_not_undo_what_happened_while_waiting(platform, scheduler):
    """deploy_push reads the app before it waits for the release lock; another release may finish meanwhile."""
    read_before_waiting = platform.apps.get("shop")
    deploy(platform)
    platform.scale("shop", {"web": 2})

    release = pipeline.create_release(platform, read_before_waiting, description="Deploy def5678", source_image="img", slug_id=SLUG_ID,
                                      commit=None, process_types={"web": "python3 app.py"}, config_vars={})
    pipeline.release_and_swap(platform, read_before_waiting, release, RecordingOutput())

    releases = platform.apps.releases("shop")
    assert [(r.version, r.current) for r in releases.list()] == [(2, True), (1, False)]
    assert platform.apps.get("shop").formation == {"web": 2}
    assert running(scheduler) == ["web.1@v2", "web.2@v2"]


# --- failures ----------------------------------------------------------------------------------


def test_release_command_exiting_1_fails_the_release_and_touches_nothing(platform, scheduler, router):
    deploy(platform)
    before, routes_before = list(scheduler.running), dict(router.routes)
    started_before = len(scheduler.started)
    scheduler.run_result = RunResult(exit_status=1)

    with pytest.raises(ReleaseFailed) as caught:
        deploy(platform)

    assert (caught.value.version, caught.value.exit_status) == (2, 1)
    assert caught.value.reason == "release command exited with status 1"
    record = platform.apps.releases("shop").get(2)
    assert (record.status, record.current, record.eligible_for_rollback) == ("failed", False, False)
    assert record.failure == {"reason": "release command exited with status 1", "exit_status": 1}
    assert platform.apps.releases("shop").output_path(2).read_text() == "Migrating…\ndone\n"
    assert platform.apps.releases("shop").get(1).current is True
    assert platform.apps.get("shop").current_release == 1
    assert scheduler.running == before
    assert len(scheduler.started) == started_before
    assert router.routes == routes_before


def test_a_first_release_that_fails_leaves_nothing_running(platform, scheduler, router):
    scheduler.run_result = RunResult(exit_status=2)
    with pytest.raises(ReleaseFailed):
        deploy(platform)
    app = platform.apps.get("shop")
    assert (app.current_release, app.formation) == (None, {})
    assert scheduler.started == [] and router.routes == {}


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (RunResult(exit_status=137, timed_out=True), "release command timed out after 9 s and was killed"),
        (RunResult(exit_status=137, stopped=True), "release command stopped"),
        (RunResult(exit_status=None), "release command exited with status None"),
    ],
)
def test_timed_out_or_stopped_release_command(platform, scheduler, result, reason):
    scheduler.run_result = result
    with pytest.raises(ReleaseFailed) as caught:
        deploy(platform)
    assert caught.value.reason == reason
    record = platform.apps.releases("shop").get(1)
    assert record.status == "failed"
    assert record.failure == {"reason": reason, "exit_status": result.exit_status}
    assert scheduler.started == []


def test_a_process_that_does_not_boot_fails_the_release_and_is_stopped(platform, scheduler, router):
    deploy(platform)
    routes_before = dict(router.routes)
    scheduler.boot_failure = BootFailed("web.1", "exited before accepting connections on PORT 5000", "Traceback…")

    with pytest.raises(ReleaseFailed) as caught:
        deploy(platform)

    assert caught.value.reason == "web.1 exited before accepting connections on PORT 5000"
    assert isinstance(caught.value.__cause__, BootFailed)
    record = platform.apps.releases("shop").get(2)
    assert record.status == "failed"
    assert record.failure == {"reason": "web.1 exited before accepting connections on PORT 5000", "exit_status": None}
    assert scheduler.stopped == [(["web.1@v2"], 0)]  # the new process, at once
    assert running(scheduler) == ["web.1@v1"]
    assert router.routes == routes_before
    assert platform.apps.get("shop").current_release == 1
    assert platform.apps.releases("shop").get(1).current is True


def test_a_router_failure_stops_the_new_processes_and_records_why(platform, scheduler, router):
    deploy(platform)
    router.failure = EnvironmentProblem("nginx -t failed: bad config")
    with pytest.raises(EnvironmentProblem):
        deploy(platform)
    record = platform.apps.releases("shop").get(2)
    assert record.failure == {"reason": "nginx -t failed: bad config", "exit_status": None}
    assert running(scheduler) == ["web.1@v1"]
    assert platform.apps.get("shop").current_release == 1


def test_an_interrupted_release_phase_is_recorded_as_failed(platform, scheduler):
    scheduler.run_raises = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        deploy(platform)
    record = platform.apps.releases("shop").get(1)
    assert record.failure == {"reason": "interrupted (KeyboardInterrupt)", "exit_status": None}
    assert scheduler.started == []


# --- pure parts --------------------------------------------------------------------------------


def test_next_formation():
    assert pipeline.next_formation({}, PROCESS_TYPES) == {"web": 1, "worker": 0}
    assert pipeline.next_formation({"web": 3, "old": 2}, {"web": "a", "new": "b"}) == {"web": 3, "new": 0}
    assert pipeline.next_formation({"web": 0}, {"web": "a"}) == {"web": 0}


def test_explain_release_failure_names_the_output_and_what_keeps_running():
    output = RecordingOutput()
    explain_failure(output, ReleaseFailed(4, "release command exited with status 1", 1), "shop", 3)
    assert output.lines == [
        " !     release v4 failed: release command exited with status 1",
        " !     v4 is recorded as failed; see `gitpaas releases:output v4 -a shop`",
        " !     shop keeps running v3, untouched.",
    ]


def test_explain_build_failure_points_at_the_log():
    error = BuildFailed("step 3 exited 1", "tail")
    error.log_path = "/home/apps/shop/builds/x.log"  # type: ignore[attr-defined]
    output = RecordingOutput()
    explain_failure(output, error, "shop", None)
    assert output.lines == [
        " !     build failed: step 3 exited 1",
        " !     Full build log: /home/apps/shop/builds/x.log",
        " !     shop has nothing running yet.",
    ]


def test_explain_a_refused_push_is_one_line():
    output = RecordingOutput()
    explain_failure(output, PushRefused("gitpaas deploys only the main or master branch"), "shop", 2)
    assert output.lines == [" !     gitpaas deploys only the main or master branch"]


@pytest.mark.parametrize("command, expected", [
    ("python3 app.py --port $PORT", "exec python3 app.py --port $PORT"),
    ("gunicorn app:app > /dev/null", "exec gunicorn app:app > /dev/null"),
    ("./migrate && ./serve", "./migrate && ./serve"),
    ("trap '' TERM; sleep 10", "trap '' TERM; sleep 10"),
    ("FOO=1 python3 app.py", "FOO=1 python3 app.py"),
    ("echo $(date)", "echo $(date)"),
    ("if true; then x; fi", "if true; then x; fi"),
])
def test_simple_commands_are_execd_so_the_app_gets_signals(command, expected):
    from gitpaas.scheduler.docker_local import shell_command
    assert shell_command(command) == ["/bin/sh", "-c", expected]


def test_timings_are_recorded_and_described(platform):
    from gitpaas.release import describe_timings
    release = deploy(platform)
    assert {"release", "health", "swap", "total"} <= set(release.timings)
    assert platform.apps.releases("shop").get(1).timings == release.timings
    line = describe_timings(12, {"receive": 0.04, "build": 0.5, "release": 0.3, "health": 0.2, "swap": 0.1, "total": 1.4})
    assert line == "deployed v12 in 1.4 s: receive 0.0, build 0.5, release 0.3, health 0.2, swap 0.1"


def test_listening_sockets_are_read_from_the_process_network_namespace():
    import os
    import socket

    from gitpaas.scheduler.docker_local import listening_in_container
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        assert listening_in_container(os.getpid(), port) is False, "bound is not listening"
        listener.listen()
        assert listening_in_container(os.getpid(), port) is True
    assert listening_in_container(0, port) is None
    assert listening_in_container(2 ** 22 + 17, port) is None, "no such process: cannot tell"
