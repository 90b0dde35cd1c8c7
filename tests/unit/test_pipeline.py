"""The story of a release against the shared in-memory fakes: ``deploy_push`` end to end (a real
bare repository and commit, a fake builder, a fake scheduler and router), then the release half
(release phase → swap → record) case by case. Milliseconds each; what is asserted is what a user
could observe: the push's output, the records on disk, which processes run, where traffic goes.
"""

from __future__ import annotations

import pytest

from fakes import PROCESS_TYPES, SLUG_ID, commit, deploy, move_branch, routed, running
from gitpaas import events, pipeline
from gitpaas.errors import BootFailed, BuildFailed, EnvironmentProblem, ProcfileError, PushRefused, ReleaseFailed
from gitpaas.formation import next_formation
from gitpaas.hook import explain_failure
from gitpaas.identity import OPERATOR, Actor, account_id, account_ref, local_email
from gitpaas.operations import create_app, scale
from gitpaas.output import RecordingOutput
from gitpaas.release import describe_timings
from gitpaas.retention import apply_retention
from gitpaas.scheduler import RunResult

APP_FILES = {"Procfile": "web: python3 app.py\nrelease: ./migrate.sh\n", "app.py": "print('hi')\n"}


@pytest.fixture
def pushed(tmp_path):
    """A platform whose app "web" has a real bare repository; ``push(files)`` deploys a commit of them."""
    from fakes import make_platform

    platform = make_platform(tmp_path)
    create_app(platform, "web")
    repo = platform.apps.repo_path("web")

    def push(files=APP_FILES, ref="refs/heads/main", actor=OPERATOR):
        old, new = commit(repo, files)
        output = RecordingOutput()
        try:
            release = pipeline.deploy_push(platform, "web", old, new, ref, output, actor)
        except Exception as exc:
            exc.output = output  # type: ignore[attr-defined]  (for the test to read)
            raise
        move_branch(repo, new)
        return release, output
    push.platform = platform  # type: ignore[attr-defined]
    return push


# --- deploy_push: what happens on git push -------------------------------------------------------


def test_a_push_builds_releases_and_routes_to_the_new_release(pushed):
    platform = pushed.platform
    release, output = pushed()

    assert (release.version, release.status, release.current) == (1, "succeeded", True)
    assert release.description.startswith("Deploy ") and release.commit
    assert release.process_types == {"web": "python3 app.py", "release": "./migrate.sh"}
    assert release.build_log and release.build_log.endswith(".log")
    assert {"receive", "build", "release", "health", "swap", "total"} <= set(release.timings)
    assert running(platform) == ["web.1@v1"] and routed(platform, "web") == [1]
    (job, _timeout), = platform.scheduler.runs
    assert (job.type, job.command) == ("release", "./migrate.sh")
    assert output.lines[0].startswith("-----> Deploying web: main at ")
    assert "       Procfile: web, release" in output.lines
    assert "-----> Building on the trixie stack with a fake builder" in output.lines
    assert "       Step 1/1 : COPY . /app" in output.lines
    assert output.lines[-2].startswith("-----> Deployed v1 in ")
    assert output.lines[-1] == "       http://web.localhost:8080/"


def test_the_pusher_is_recorded_as_the_release_user(pushed):
    release, _ = pushed(actor=Actor("dev@example.com"))
    assert release.user == {"email": "dev@example.com", "id": account_id("dev@example.com")}
    operator, _ = pushed()
    assert operator.user == account_ref(local_email())  # a local push: the OS user at this host


def test_a_second_push_swaps_and_retires_the_first(pushed):
    pushed()
    second, _ = pushed({**APP_FILES, "app.py": "print('v2')\n"})
    assert second.version == 2
    assert running(pushed.platform) == ["web.1@v1 stopping", "web.1@v2"]
    assert routed(pushed.platform, "web") == [2]


def test_a_failed_build_refuses_the_push_with_its_log_and_releases_nothing(pushed):
    pushed()
    pushed.platform.builders[0].failure = "step 3 exited 1"
    with pytest.raises(BuildFailed) as caught:
        pushed({**APP_FILES, "app.py": "broken"})
    assert caught.value.log_path and caught.value.log_path.endswith(".log")
    assert pushed.platform.apps.releases("web").versions() == [1]
    assert running(pushed.platform) == ["web.1@v1"]


def test_a_bad_procfile_is_refused_before_the_build(pushed):
    with pytest.raises(ProcfileError) as caught:
        pushed({"Procfile": "web python3 app.py\n"})
    assert caught.value.line == 1
    assert pushed.platform.builders[0].requests == []


def test_other_branches_and_deletions_are_refused(pushed):
    with pytest.raises(PushRefused, match="only the main or master branch, not 'feature'"):
        pushed(ref="refs/heads/feature")
    repo = pushed.platform.apps.repo_path("web")
    with pytest.raises(PushRefused, match="deleting main is not supported"):
        pipeline.deploy_push(pushed.platform, "web", "1" * 40, "0" * 40, "refs/heads/main", RecordingOutput(), OPERATOR)
    assert repo.is_dir()


def test_a_push_whose_branch_moved_while_it_waited_is_refused(pushed):
    pushed()
    repo = pushed.platform.apps.repo_path("web")
    stale_old, late = commit(repo, {**APP_FILES, "app.py": "print('late')\n"})
    pushed({**APP_FILES, "app.py": "print('first')\n"})  # someone else's push landed while this one waited
    with pytest.raises(PushRefused, match="moved to .* while this push waited"):
        pipeline.deploy_push(pushed.platform, "web", stale_old, late, "refs/heads/main", RecordingOutput(), OPERATOR)
    assert pushed.platform.apps.releases("web").versions() == [1, 2]


def test_postdeploy_runs_once_after_the_first_release(pushed):
    files = {**APP_FILES, "app.json": '{"scripts": {"postdeploy": "./seed.sh"}}'}
    pushed(files)
    pushed({**files, "app.py": "print('v2')\n"})
    jobs = [job.type for job, _ in pushed.platform.scheduler.runs]
    assert jobs == ["release", "postdeploy", "release"]
    assert pushed.platform.apps.get("web").postdeploy["status"] == "succeeded"


def test_app_json_addons_are_provisioned_before_the_first_release_phase_even_after_it_failed(pushed):
    """A first deploy whose release phase fails keeps its add-ons; the next push neither asks for
    them again nor trips on an attachment written in lower case."""
    from gitpaas.addons.store import AddonStore

    files = {**APP_FILES, "app.json": '{"addons": ["heroku-postgresql", {"plan": "heroku-redis", "as": "cache"}]}'}
    platform = pushed.platform
    platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(ReleaseFailed) as failed:
        pushed(files)
    job = platform.scheduler.runs[-1][0]
    assert {"DATABASE_URL", "CACHE_URL"} <= set(job.release.env), "the release phase had the add-ons' URLs"
    assert failed.value.output.text.index("app.json asks for heroku-postgresql") < failed.value.output.text.index(
        "Release v1 created")
    platform.scheduler.run_result = RunResult(exit_status=0)
    release, _ = pushed({**files, "app.py": "print('v2')\n"})
    assert release.status == "succeeded"
    assert sorted(a.config_var for a in AddonStore(platform.settings).of_app("web")) == ["CACHE_URL", "DATABASE_URL"]


def test_a_failed_build_provisions_no_app_json_addon(pushed):
    from gitpaas.addons.store import AddonStore

    pushed.platform.builders[0].failure = "pip failed"
    with pytest.raises(BuildFailed):
        pushed({**APP_FILES, "app.json": '{"addons": ["heroku-postgresql"]}'})
    assert AddonStore(pushed.platform.settings).of_app("web") == []


def test_buildpack_default_process_types_fill_what_the_procfile_lacks(pushed):
    pushed.platform.builders[0].default_process_types = {"web": "gunicorn app:app", "worker": "celery"}
    release, _ = pushed({"Procfile": "worker: python3 worker.py\n", "app.py": ""})
    assert release.process_types == {"worker": "python3 worker.py", "web": "gunicorn app:app"}


# --- the release half: release phase → swap → record ----------------------------------------------


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

    (job, timeout), = scheduler.runs
    assert (job.type, job.command, job.release.image, job.release.version) == ("release", "./migrate.sh", record.image, 1)
    assert dict(job.release.env) == {"DATABASE_URL": "postgres://db"}
    assert timeout == 9
    assert platform.apps.releases("shop").output_path(1).read_text() == "Migrating…\ndone\n"
    assert "       Migrating…" in output.lines

    assert running(platform) == ["web.1@v1"]
    assert router.routes["shop"][0] == ["shop.localhost"] and routed(platform) == [1]
    (deployment,) = scheduler.deployments
    assert (deployment.release.version, dict(deployment.formation)) == (1, {"web": 1, "worker": 0})
    (held,) = scheduler.holds
    assert held.deployment == deployment and held.released and not held.discarded, \
        "the processes started held during the release phase are the ones the swap releases"
    assert "       Meanwhile the new processes' containers start, their commands held until it succeeds" in output.lines


def test_with_holding_off_the_swap_starts_everything_after_the_release_phase(platform, scheduler):
    scheduler.hold_processes = False
    output = RecordingOutput()
    deploy(platform, output=output)
    assert scheduler.holds == [] and running(platform) == ["web.1@v1"]
    assert not any("held" in line for line in output.lines)


def test_second_release_replaces_the_first_and_clears_its_current_flag(platform, scheduler):
    deploy(platform)
    deploy(platform)
    releases = platform.apps.releases("shop")
    assert [(r.version, r.status, r.current) for r in releases.list()] == [(2, "succeeded", True), (1, "succeeded", False)]
    assert platform.apps.get("shop").current_release == 2
    assert running(platform) == ["web.1@v1 stopping", "web.1@v2"]
    assert routed(platform) == [2]


def test_scaled_quantities_are_kept_and_new_types_get_defaults(platform, scheduler):
    deploy(platform)
    scale(platform, "shop", {"web": 2, "worker": 1})
    assert running(platform) == ["web.1@v1", "web.2@v1", "worker.1@v1"]

    deploy(platform, {"web": "python3 app.py", "worker": "python3 worker.py", "clock": "python3 clock.py"})
    scheduler.finish_retiring()

    assert platform.apps.get("shop").formation == {"web": 2, "worker": 1, "clock": 0}
    assert running(platform) == ["web.1@v2", "web.2@v2", "worker.1@v2"]


def test_a_type_dropped_from_the_procfile_leaves_the_formation(platform, scheduler):
    deploy(platform)
    scale(platform, "shop", {"worker": 1})
    deploy(platform, {"web": "python3 app.py"})
    scheduler.finish_retiring()
    assert platform.apps.get("shop").formation == {"web": 1}
    assert running(platform) == ["web.1@v2"]


def test_no_release_command_skips_the_release_phase(platform, scheduler):
    output = RecordingOutput()
    deploy(platform, {"web": "python3 app.py"}, output=output)
    assert scheduler.runs == [] and scheduler.holds == [], "nothing to overlap: the processes start as always"
    assert "-----> No release command in the Procfile: skipping the release phase" in output.lines
    assert platform.apps.releases("shop").get(1).status == "succeeded"
    assert running(platform) == ["web.1@v1"]


def test_a_dockerfile_web_without_a_command_runs_the_image_default(platform, scheduler):
    deploy(platform, {"web": None})
    (deployment,) = scheduler.deployments
    assert deployment.release.process_types == {"web": None}
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
    scale(platform, "shop", {"web": 2})

    release = pipeline.create_release(platform, read_before_waiting, OPERATOR, description="Deploy def5678",
                                      source_image="gitpaas-test/shop:build-1", slug_id=SLUG_ID, commit=None,
                                      process_types={"web": "python3 app.py"}, config_vars={})
    pipeline.release_and_swap(platform, "shop", release, RecordingOutput())
    scheduler.finish_retiring()

    releases = platform.apps.releases("shop")
    assert [(r.version, r.current) for r in releases.list()] == [(2, True), (1, False)]
    assert platform.apps.get("shop").formation == {"web": 2}
    assert running(platform) == ["web.1@v2", "web.2@v2"]


# --- failures ------------------------------------------------------------------------------------


def test_release_command_exiting_1_fails_the_release_and_touches_nothing(platform, scheduler, router):
    deploy(platform)
    before, routes_before = list(scheduler.running), dict(router.routes)
    deployments_before = len(scheduler.deployments)
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
    assert len(scheduler.deployments) == deployments_before, "the scheduler was never asked to swap"
    assert router.routes == routes_before
    assert scheduler.holds[-1].discarded and not scheduler.holds[-1].released, "what was held for v2 is removed"


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
    scheduler.boot_failure = "exited before accepting connections on PORT 5000"

    with pytest.raises(BootFailed) as caught:
        deploy(platform)

    assert str(caught.value) == "web.1 exited before accepting connections on PORT 5000"
    assert (caught.value.version, caught.value.log_tail) == (2, "Traceback…")
    record = platform.apps.releases("shop").get(2)
    assert record.status == "failed"
    assert record.failure == {"reason": "web.1 exited before accepting connections on PORT 5000", "exit_status": None}
    assert running(platform) == ["web.1@v1"]
    assert router.routes == routes_before
    assert platform.apps.get("shop").current_release == 1
    assert platform.apps.releases("shop").get(1).current is True


def test_a_router_failure_records_why_and_keeps_the_old_release(platform, scheduler, router):
    deploy(platform)
    router.failure = EnvironmentProblem("nginx -t failed: bad config")
    with pytest.raises(EnvironmentProblem):
        deploy(platform)
    record = platform.apps.releases("shop").get(2)
    assert record.failure == {"reason": "nginx -t failed: bad config", "exit_status": None}
    assert running(platform) == ["web.1@v1"]
    assert platform.apps.get("shop").current_release == 1


def test_processes_held_for_a_swap_that_fails_before_taking_them_are_removed(platform, scheduler, monkeypatch):
    def unreachable(deployment, output, held=None):
        raise EnvironmentProblem("the container engine stopped answering while deploying")
    monkeypatch.setattr(scheduler, "deploy", unreachable)
    with pytest.raises(EnvironmentProblem):
        deploy(platform)
    (held,) = scheduler.holds
    assert held.discarded and not held.released


def test_processes_held_and_taken_by_a_swap_that_fails_are_the_swaps_to_remove(platform, scheduler):
    scheduler.boot_failure = "never listened"
    with pytest.raises(BootFailed):
        deploy(platform)
    (held,) = scheduler.holds
    assert held.taken and not held.released and not held.discarded


def test_an_interrupted_release_phase_is_recorded_as_failed(platform, scheduler):
    scheduler.run_raises = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        deploy(platform)
    record = platform.apps.releases("shop").get(1)
    assert record.failure == {"reason": "interrupted (KeyboardInterrupt)", "exit_status": None}
    assert scheduler.started == []
    (held,) = scheduler.holds
    assert held.discarded and not held.released


# --- what the git hook tells the pusher ----------------------------------------------------------


def test_explain_release_failure_names_the_output_and_what_keeps_running():
    output = RecordingOutput()
    explain_failure(output, ReleaseFailed(4, "release command exited with status 1", 1), "shop", 3)
    assert output.lines == [
        " !     release v4 failed: release command exited with status 1",
        " !     v4 is recorded as failed; see `gitpaas releases:output v4 -a shop`",
        " !     shop keeps running v3, untouched.",
    ]


def test_explain_boot_failure_names_the_release_too():
    output = RecordingOutput()
    explain_failure(output, BootFailed("web.1", "did not accept connections", version=5), "shop", 4)
    assert output.lines == [
        " !     web.1 did not accept connections",
        " !     v5 is recorded as failed; see `gitpaas releases:output v5 -a shop`",
        " !     shop keeps running v4, untouched.",
    ]


def test_explain_build_failure_points_at_the_log():
    output = RecordingOutput()
    explain_failure(output, BuildFailed("step 3 exited 1", "tail", log_path="/home/apps/shop/builds/x.log"),
                    "shop", None)
    assert output.lines == [
        " !     build failed: step 3 exited 1",
        " !     Full build log: builds/x.log in shop's folder on the server",
        " !     shop has nothing running yet.",
    ]


def test_explain_a_refused_push_is_one_line():
    output = RecordingOutput()
    explain_failure(output, PushRefused("gitpaas deploys only the main or master branch"), "shop", 2)
    assert output.lines == [" !     gitpaas deploys only the main or master branch"]


# --- pure parts ----------------------------------------------------------------------------------


def test_next_formation():
    assert next_formation({}, PROCESS_TYPES) == {"web": 1, "worker": 0}
    assert next_formation({"web": 3, "old": 2}, {"web": "a", "new": "b"}) == {"web": 3, "new": 0}
    assert next_formation({"web": 0}, {"web": "a"}) == {"web": 0}


def test_timings_are_recorded_and_described(platform):
    release = deploy(platform)
    assert {"release", "health", "swap", "total"} <= set(release.timings)
    assert platform.apps.releases("shop").get(1).timings == release.timings
    line = describe_timings(12, {"receive": 0.04, "build": 0.5, "release": 0.3, "health": 0.2, "swap": 0.1, "total": 1.4})
    assert line == "deployed v12 in 1.4 s: receive 0.0, build 0.5, release 0.3, health 0.2, swap 0.1"


# --- a release with an image per process type (heroku.yml's build.docker) ---------------------------

def test_images_per_process_type_are_tagged_run_rolled_back_and_pruned(platform, scheduler):
    platform.slugs.tags["gitpaas-test/shop:build-worker"] = "sha256:worker"
    platform.slugs.tags["gitpaas-test/shop:build-web"] = "sha256:web"
    app = platform.apps.get("shop")
    release = pipeline.create_release(
        platform, app, Actor(None), description="Deploy abc1234", source_image="gitpaas-test/shop:build-web",
        slug_id="slug", commit="abc1234" + "0" * 33, process_types={"web": None, "worker": None, "release": "./m"},
        config_vars={}, process_images={"worker": "gitpaas-test/shop:build-worker",
                                        "release": "gitpaas-test/shop:build-worker"})
    repository = platform.settings.image_repository("shop")
    assert release.process_images == {"worker": f"{repository}:v1-worker", "release": f"{repository}:v1-release"}
    assert platform.slugs.tags[f"{repository}:v1-worker"] == "sha256:worker"
    pipeline.release_and_swap(platform, "shop", release, RecordingOutput())
    (job, _timeout), = scheduler.runs
    assert job.release.image_of("release") == f"{repository}:v1-release"
    spec = scheduler.deployments[-1].release
    assert (spec.image_of("web"), spec.image_of("worker")) == (f"{repository}:v1", f"{repository}:v1-worker")

    deploy(platform, image="gitpaas-test/shop:build-2")  # v2: one image
    back = events.rollback(platform, "shop", Actor(None), RecordingOutput(), 1)  # v3: v1's images again
    assert back.process_images == {"worker": f"{repository}:v3-worker", "release": f"{repository}:v3-release"}
    assert platform.slugs.tags[f"{repository}:v3-worker"] == "sha256:worker"

    app = platform.apps.get("shop")
    app.retention = 1
    platform.apps.save(app)
    apply_retention(platform, "shop")
    assert not platform.slugs.exists(f"{repository}:v1-worker") and platform.slugs.exists(f"{repository}:v3-worker")
    assert "slug image was pruned" in events.ineligibility(platform, platform.apps.releases("shop").get(1))
