"""Add-ons on the in-memory fakes: the names Heroku gives them, the releases their changes make (and
which of those run the release phase), the config vars they own, rollbacks, app.json, backups.
The real PostgreSQL and Redis are in tests/integration/test_addons.py."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone

import pytest

from fakes import deploy, running
from gitpaas import appjson, events, operations
from gitpaas.addons import backups, lifecycle, plans
from gitpaas.addons.store import AddonStore, BackupStore
from gitpaas.errors import ChangeReleaseFailed, EnvironmentProblem, InvalidParams, PushRefused, UsageError
from gitpaas.identity import OPERATOR
from gitpaas.output import RecordingOutput
from gitpaas.release import FAILED
from gitpaas.scheduler import RunResult

TYPES = {"web": "python3 app.py", "release": "alembic upgrade head"}


def create(platform, plan="postgresql", **options):
    return lifecycle.create(platform, "shop", OPERATOR, RecordingOutput(), plan, **options)


# --- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["postgresql", "heroku-postgresql", "heroku-postgresql:essential-0", "HEROKU-POSTGRESQL"])
def test_heroku_plan_names_are_accepted(text):
    assert plans.parse_plan(text) is plans.POSTGRESQL


def test_an_unknown_plan_names_the_ones_there_are():
    with pytest.raises(UsageError, match="postgresql .*redis"):
        plans.parse_plan("mongodb")


def test_attachments_are_named_like_herokus():
    taken: set[str] = set()
    first = plans.attachment_for(plans.POSTGRESQL, taken)
    second = plans.attachment_for(plans.POSTGRESQL, {first})
    assert (first, second) == ("DATABASE", "HEROKU_POSTGRESQL_AMBER")
    assert plans.attachment_for(plans.REDIS, {first}) == "REDIS"
    assert plans.attachment_for(plans.POSTGRESQL, {first}, "reports-db") == "REPORTS_DB"
    with pytest.raises(UsageError, match="already"):
        plans.attachment_for(plans.POSTGRESQL, {first}, "database")
    with pytest.raises(UsageError, match="invalid attachment"):
        plans.attachment_for(plans.POSTGRESQL, set(), "9lives")


def test_the_url_quotes_the_credentials():
    assert plans.POSTGRESQL.url("u", "p/w@d", "pg-1", "db") == "postgres://u:p%2Fw%40d@pg-1:5432/db"
    assert plans.REDIS.url("", "secret", "redis-1", "") == "redis://:secret@redis-1:6379"


# --- provisioning as a release ----------------------------------------------------------------

def test_an_add_on_before_any_release_is_attached_without_a_release(platform):
    change = create(platform)
    assert change.pending is None and platform.apps.releases("shop").versions() == []
    assert platform.scheduler.addons[change.addon.name]["ready"]
    release = deploy(platform, TYPES)
    assert release.config_vars["DATABASE_URL"] == change.addon.url()
    assert release.addon_plan_names == ["heroku-postgresql:local"]


def test_attaching_makes_a_release_that_runs_the_release_phase_with_the_new_url(platform):
    deploy(platform, TYPES)
    runs = len(platform.scheduler.runs)
    change = create(platform)
    release = platform.apps.releases("shop").get(2)
    assert release.description == f"Attach DATABASE ({change.addon.name})"
    assert release.status == "succeeded" and platform.apps.get("shop").current_release == 2
    assert len(platform.scheduler.runs) == runs + 1
    assert platform.scheduler.runs[-1][0].release.env["DATABASE_URL"] == change.addon.url()
    assert running(platform) == ["web.1@v1 stopping", "web.1@v2"]
    assert release.addon_config_vars == ["DATABASE_URL"] and release.own_config_vars == {}


def test_the_release_phase_waits_for_the_add_on_and_a_dead_one_starts_nothing(platform):
    change = create(platform)
    platform.scheduler.addons[change.addon.name]["running"] = False  # its container stopped
    platform.scheduler.addon_not_ready = "still starting"
    with pytest.raises(EnvironmentProblem, match="nothing of shop was started"):
        deploy(platform, TYPES)
    assert platform.scheduler.runs == [] and running(platform) == []


def test_a_failed_attach_release_keeps_the_add_on_and_the_old_processes(platform):
    deploy(platform, TYPES)
    platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(ChangeReleaseFailed, match="is attached, but release v2 failed.*keep running v1"):
        create(platform)
    assert len(AddonStore(platform.settings).of_app("shop")) == 1
    assert platform.apps.get("shop").current_release == 1


def test_a_second_postgres_gets_a_colored_name_and_redis_its_own(platform):
    create(platform)
    create(platform)
    create(platform, "heroku-redis")
    assert sorted(AddonStore(platform.settings).config_vars("shop")) == [
        "DATABASE_URL", "HEROKU_POSTGRESQL_AMBER_URL", "REDIS_URL"]


def test_an_add_on_cannot_take_a_config_var_the_app_set_itself(platform):
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"DATABASE_URL": "postgres://x"})
    with pytest.raises(UsageError, match="own config vars"):
        create(platform)
    assert platform.scheduler.addons == {}


def test_a_provisioning_that_never_becomes_ready_leaves_nothing(platform):
    platform.scheduler.addon_not_ready = "initdb failed"
    with pytest.raises(EnvironmentProblem, match="initdb failed"):
        create(platform, name="pg-main")
    assert AddonStore(platform.settings).of_app("shop") == [] and platform.scheduler.addons == {}


def test_names_are_unique_in_the_home_and_checked(platform):
    create(platform, name="pg-main")
    with pytest.raises(UsageError, match="already called"):
        create(platform, name="pg-main", attachment="OTHER")
    with pytest.raises(UsageError, match="invalid add-on name"):
        create(platform, name="PG main")


# --- the config vars it owns ------------------------------------------------------------------

def test_config_set_and_unset_on_an_add_ons_var_are_refused_naming_it(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    for change in ({"set_values": {"DATABASE_URL": "postgres://elsewhere"}}, {"unset_keys": ["DATABASE_URL"]}):
        with pytest.raises(InvalidParams, match=f"belongs to the add-on {addon.name}"):
            events.change_config(platform, "shop", OPERATOR, RecordingOutput(), **change)
    assert platform.apps.releases("shop").versions() == [1, 2]


def test_rotation_makes_a_release_without_the_release_phase(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    runs = len(platform.scheduler.runs)
    change = lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    assert change.release.description == "Update DATABASE_URL by heroku-postgresql"
    assert len(platform.scheduler.runs) == runs, "no release phase"
    assert change.release.config_vars["DATABASE_URL"] != addon.url() == platform.apps.releases("shop").get(2).config_vars[
        "DATABASE_URL"]
    assert change.release.config_vars["DATABASE_URL"] == AddonStore(platform.settings).get(addon.name).url()
    state, new = platform.scheduler.addons[addon.name], AddonStore(platform.settings).get(addon.name).credentials
    assert platform.scheduler._accepts(state, new["password"]) and not platform.scheduler._accepts(
        state, addon.credentials["password"]), "the service takes the new password, not the old"
    assert not any(new["password"] in " ".join(command) for command in state["commands"]), "never in a command line"


def test_rotation_uses_the_latest_release_even_a_failed_one_and_says_so(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(Exception):
        deploy(platform, TYPES, image="build-2")
    assert platform.apps.releases("shop").get(3).status == FAILED
    platform.scheduler.run_result = RunResult(exit_status=0)
    output = RecordingOutput()
    change = lifecycle.rotate(platform, "shop", OPERATOR, output, addon.name)
    assert change.release.version == 4 and change.release.image.endswith(":v4")
    assert platform.slugs.image_id(change.release.image) == platform.slugs.image_id("build-2")
    assert "v3, failed" in output.text and platform.apps.get("shop").current_release == 4


def test_rotation_that_the_service_refuses_changes_nothing(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    platform.scheduler.addon_exec_status = 1
    with pytest.raises(EnvironmentProblem, match="could not change the credentials"):
        lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    assert AddonStore(platform.settings).get(addon.name).url() == addon.url()
    assert platform.apps.releases("shop").versions() == [1, 2]


@pytest.mark.parametrize("plan", ["postgresql", "redis"])
def test_a_rotation_cut_short_after_the_service_changed_is_settled_by_the_next_start(platform, monkeypatch, plan):
    from gitpaas.addons import runtime

    addon = create(platform, plan).addon
    saves = []
    real_save = AddonStore.save

    def save_then_fail(self, record):
        saves.append(record.rotating)
        if len(saves) == 2:  # the save that promotes the new password: the disk is full
            raise OSError(28, "No space left on device")
        real_save(self, record)
    monkeypatch.setattr(AddonStore, "save", save_then_fail)
    with pytest.raises(OSError):
        lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    monkeypatch.setattr(AddonStore, "save", real_save)
    stuck = AddonStore(platform.settings).get(addon.name)
    assert stuck.rotating and stuck.credentials["password"] == addon.credentials["password"]
    state = platform.scheduler.addons[addon.name]
    assert platform.scheduler._accepts(state, stuck.rotating), "the service has the new one"
    new = stuck.rotating
    runtime.ready(platform, stuck, RecordingOutput())
    settled = AddonStore(platform.settings).get(addon.name)
    assert settled.rotating is None and settled.credentials["password"] == new


def test_a_redis_password_its_configuration_cannot_keep_is_put_back(platform):
    addon = create(platform, "redis").addon
    platform.scheduler.addon_exec_fails_on = "CONFIG REWRITE"
    with pytest.raises(EnvironmentProblem, match="could not change the credentials"):
        lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    kept = AddonStore(platform.settings).get(addon.name)
    assert kept.rotating is None and kept.credentials == addon.credentials
    assert platform.scheduler._accepts(platform.scheduler.addons[addon.name], addon.credentials["password"])


def test_a_restart_after_a_failed_rotation_release_gets_the_new_credentials(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon                                                    # v2
    platform.scheduler.boot_failure = "never listened"
    with pytest.raises(ChangeReleaseFailed, match="has new credentials, but release v3 failed"):
        lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)   # v3 failed
    platform.scheduler.boot_failure = None
    operations.restart(platform, "shop")
    new_url = AddonStore(platform.settings).get(addon.name).url()
    assert platform.scheduler.deployments[-1].release.version == 2
    assert platform.scheduler.deployments[-1].release.env["DATABASE_URL"] == new_url != addon.url()


def test_rollback_restores_code_and_own_config_but_keeps_add_ons_and_their_current_values(platform):
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"MODE": "old"})
    deploy(platform, TYPES)
    addon = create(platform).addon                                                        # v2
    events.change_config(platform, "shop", OPERATOR, RecordingOutput(), set_values={"MODE": "new"})  # v3
    lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)           # v4
    output = RecordingOutput()
    rolled = events.rollback(platform, "shop", OPERATOR, output, 1)
    current_url = AddonStore(platform.settings).get(addon.name).url()
    assert rolled.config_vars == {"MODE": "old", "DATABASE_URL": current_url}
    assert platform.apps.config("shop").get() == {"MODE": "old"}
    assert "stay attached" in output.text and "DATABASE_URL" in output.text
    assert AddonStore(platform.settings).of_app("shop") != []


def test_retry_runs_with_the_current_add_on_values(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    lifecycle.rotate(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    retried = events.retry(platform, "shop", OPERATOR, RecordingOutput())
    assert retried.config_vars["DATABASE_URL"] == AddonStore(platform.settings).get(addon.name).url()


# --- destroying -------------------------------------------------------------------------------

def test_destroying_keeps_a_final_backup_and_makes_a_release_without_it(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    change = lifecycle.destroy(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    assert change.release.description == f"Detach DATABASE ({addon.name})"
    assert "DATABASE_URL" not in change.release.config_vars and change.release.addon_plan_names == []
    assert change.backup.kind == "final" and change.backup.status == "completed"
    assert [b.id for b in BackupStore(platform.settings).list("shop")] == [change.backup.id]
    assert addon.name not in platform.scheduler.addons


def test_an_add_on_whose_data_cannot_be_kept_is_not_destroyed(platform):
    deploy(platform, TYPES)
    addon = create(platform).addon
    platform.scheduler.addon_exec_status = 1
    with pytest.raises(EnvironmentProblem, match="was not destroyed"):
        lifecycle.destroy(platform, "shop", OPERATOR, RecordingOutput(), addon.name)
    assert AddonStore(platform.settings).get(addon.name, "shop")
    assert addon.name in platform.scheduler.addons


def test_destroying_the_app_keeps_final_backups_in_the_home(platform):
    deploy(platform, TYPES)
    create(platform)
    create(platform, "redis")
    kept = operations.destroy_app(platform, "shop")
    assert [b.kind for b in kept] == ["final"]
    assert [b.id for b in BackupStore(platform.settings).list()] == [kept[0].id]
    assert platform.scheduler.addons == {}


# --- app.json ---------------------------------------------------------------------------------

def test_app_json_addons_take_strings_and_objects():
    manifest = appjson.parse('{"addons": ["heroku-postgresql", {"plan": "heroku-redis", "as": "CACHE", '
                             '"options": {"version": "7"}}]}')
    assert manifest.addons == (("postgresql", None), ("redis", "CACHE"))
    for bad, words in (('{"addons": "heroku-postgresql"}', "must be a list"), ('{"addons": [{"as": "X"}]}', "entry 1"),
                       ('{"addons": [3]}', "entry 1"), ('{"addons": ["redis", "mysql"]}', "entry 2: no add-on plan"),
                       ('{"addons": [{"plan": "redis", "as": "9 lives"}]}', "invalid attachment name")):
        with pytest.raises(PushRefused, match=words):
            appjson.parse(bad)


def test_app_json_addons_are_provisioned_once_before_the_first_release(platform):
    from gitpaas.pipeline import provision_manifest_addons

    wanted = [(plans.POSTGRESQL, None, "app.json"), (plans.REDIS, "CACHE", "heroku.yml")]
    first = RecordingOutput()
    provision_manifest_addons(platform, "shop", wanted, first)
    assert "-----> heroku.yml asks for heroku-redis as CACHE" in first.lines
    provision_manifest_addons(platform, "shop", wanted, RecordingOutput())
    assert sorted(a.config_var for a in AddonStore(platform.settings).of_app("shop")) == ["CACHE_URL", "DATABASE_URL"]


# --- backups ----------------------------------------------------------------------------------

def test_backups_are_numbered_per_app_never_reused_and_outlive_their_add_on(platform):
    first = create(platform).addon
    b1 = backups.capture(platform, "shop")
    lifecycle.destroy(platform, "shop", OPERATOR, RecordingOutput(), first.name)
    create(platform)
    b3 = backups.capture(platform, "shop")
    store = BackupStore(platform.settings)
    assert [b.id for b in store.list("shop")] == [b1.id, "f002", b3.id] == ["b001", "f002", "b003"]
    assert oct(os.stat(store.dump_path(b1)).st_mode & 0o777) == "0o600"
    store.delete(b3)
    assert backups.capture(platform, "shop").id == "b004", "a deleted id is not given to other data"


def test_a_restore_feeds_the_dump_to_pg_restore_in_one_transaction(platform):
    addon = create(platform).addon
    backup = backups.capture(platform, "shop")
    backups.restore(platform, "shop", backup.id)
    state = platform.scheduler.addons[addon.name]
    assert state["restored"] == BackupStore(platform.settings).dump_path(backup).read_bytes()
    assert "--single-transaction" in state["commands"][-1]


def test_a_restore_waits_for_the_release_under_way(platform):
    create(platform)
    backup = backups.capture(platform, "shop")
    lock = platform.apps.release_lock("shop")
    lock.acquire()
    done = threading.Event()
    worker = threading.Thread(target=lambda: (backups.restore(platform, "shop", backup.id), done.set()))
    worker.start()
    assert not done.wait(0.5), "a restore must not run while a release (its migration) does"
    lock.release()
    worker.join(10)
    assert done.is_set()


def test_a_failed_capture_is_recorded_failed_keeps_no_dump_and_cannot_be_restored(platform):
    create(platform)
    platform.scheduler.addon_exec_status = 1
    with pytest.raises(EnvironmentProblem, match="pg_dump"):
        backups.capture(platform, "shop")
    platform.scheduler.addon_exec_status = 0
    (failed,) = BackupStore(platform.settings).list("shop")
    assert failed.status == "failed" and not BackupStore(platform.settings).dump_path(failed).exists()
    with pytest.raises(UsageError, match="did not complete"):
        backups.restore(platform, "shop", failed.id)


def test_a_capture_that_cannot_reach_the_add_on_is_recorded_failed(platform):
    create(platform)
    platform.scheduler.addon_not_ready = "down"
    with pytest.raises(EnvironmentProblem, match="down"):
        backups.capture(platform, "shop")
    assert [b.status for b in BackupStore(platform.settings).list("shop")] == ["failed"]


def test_redis_has_no_backups(platform):
    create(platform, "redis")
    with pytest.raises(UsageError, match="no postgresql add-on"):
        backups.capture(platform, "shop")


@pytest.mark.parametrize("at", ["24:00", "7:5", "noon", "12:60", "١٢:00"])
def test_a_schedule_takes_a_time_of_day(platform, at):
    create(platform)
    with pytest.raises(UsageError, match="HH:MM"):
        backups.set_schedule(platform, "shop", None, at)


def test_scheduled_backups_are_taken_once_a_day_and_pruned_to_the_retention(platform):
    create(platform)
    backups.set_schedule(platform, "shop", None, "03:30", retain=2)
    days = [datetime(2026, 12, day, hour, minute, tzinfo=timezone.utc)
            for day, hour, minute in ((1, 3, 0), (1, 3, 31), (1, 4, 0), (2, 3, 30), (3, 9, 0), (4, 3, 45))]
    taken = []
    for now in days:
        taken.append(len([line for line in backups.run_scheduled(platform, now) if "backed up" in line]))
    assert taken == [0, 1, 0, 1, 1, 1]
    kept = BackupStore(platform.settings).list("shop")
    assert [b.created_at[:10] for b in kept] == ["2026-12-03", "2026-12-04"]


def test_a_failed_scheduled_backup_is_retried_and_never_counts_toward_the_retention(platform):
    create(platform)
    backups.set_schedule(platform, "shop", None, "03:30", retain=2)
    day = lambda number: datetime(2026, 12, number, 4, 0, tzinfo=timezone.utc)  # noqa: E731
    backups.run_scheduled(platform, day(1))
    platform.scheduler.addon_exec_status = 1
    assert "failed" in backups.run_scheduled(platform, day(2))[0]
    platform.scheduler.addon_exec_status = 0
    assert "backed up" in backups.run_scheduled(platform, day(2).replace(minute=1))[0], "still due: retried"
    backups.run_scheduled(platform, day(3))
    assert [(b.created_at[:10], b.status) for b in BackupStore(platform.settings).list("shop")] == [
        ("2026-12-02", "completed"), ("2026-12-03", "completed")]


def test_a_scheduled_backup_waits_for_a_release_under_way(platform):
    create(platform)
    backups.set_schedule(platform, "shop", None, "03:30")
    now = datetime(2026, 12, 1, 4, 0, tzinfo=timezone.utc)
    with platform.apps.release_lock("shop"):
        assert backups.run_scheduled(platform, now) == []
    assert "backed up" in backups.run_scheduled(platform, now)[0]


# --- the commands -----------------------------------------------------------------------------

@pytest.fixture
def run(platform):
    from click.testing import CliRunner

    from gitpaas.cli.main import cli

    runner = CliRunner()
    env = {"GITPAAS_HOME": str(platform.settings.home), "GITPAAS_HTTP_PORT": "8080"}
    return lambda *args: runner.invoke(cli, list(args), env=env, obj=platform)


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(" !    ") and "Traceback" not in result.output
    return result.stderr


def test_the_commands_create_list_show_and_mark_the_add_ons_config_vars(run, platform):
    deploy(platform, TYPES)
    created = run("addons:create", "heroku-postgresql", "-a", "shop", "--name", "shop-db", "--wait")
    assert created.exit_code == 0, created.output
    assert created.stdout.splitlines()[-2:] == ["Creating shop-db on shop... done",
                                                "shop-db is attached as DATABASE: DATABASE_URL is set (release v2)"]
    listed = run("addons", "--json")
    assert [(a["name"], a["app"], a["config_vars"]) for a in json.loads(listed.stdout)] == [
        ("shop-db", "shop", ["DATABASE_URL"])]
    assert "password" not in listed.stdout
    shown = run("config", "-a", "shop").stdout
    assert "DATABASE_URL: postgres://" in shown and shown.rstrip().endswith("(add-on shop-db)")
    assert run("config:get", "DATABASE_URL", "-a", "shop").stdout.startswith("postgres://")
    assert "Add-ons:       heroku-postgresql:local" in run("releases:info", "v2", "-a", "shop").stdout
    info = run("addons:info", "DATABASE", "-a", "shop").stdout
    assert "Attachments:     shop::DATABASE" in info and "Backup schedule: none" in info


def test_the_commands_refuse_what_would_lose_data_without_the_apps_name(run, platform):
    deploy(platform, TYPES)
    run("addons:create", "postgresql", "-a", "shop", "--name", "shop-db")
    assert "--confirm shop" in one_line_error(run("addons:destroy", "shop-db", "-a", "shop"), 2)
    run("pg:backups:capture", "-a", "shop")
    assert "--confirm shop" in one_line_error(run("pg:backups:restore", "b001", "-a", "shop"), 2)
    assert "--confirm shop" in one_line_error(run("pg:backups:delete", "b001", "-a", "shop"), 2)
    assert "--confirm shop" in one_line_error(run("apps:destroy", "shop"), 2)
    assert "not a backup id" in one_line_error(run("pg:backups:restore", "../x", "-a", "shop", "--confirm", "shop"), 2)
    assert "no backup 'b009'" in one_line_error(run("pg:backups:download", "b009", "-a", "shop", "-o", "x"), 3)
    assert "no add-on 'nope'" in one_line_error(run("addons:info", "nope"), 3)
    assert "no add-on plan 'mysql'" in one_line_error(run("addons:create", "mysql", "-a", "shop"), 2)
    assert "HH:MM" in one_line_error(run("pg:backups:schedule", "-a", "shop", "--at", "25:00"), 2)
    assert "belongs to the add-on shop-db" in one_line_error(run("config:unset", "DATABASE_URL", "-a", "shop"), 2)
    assert AddonStore(platform.settings).of_app("shop") and BackupStore(platform.settings).list("shop")


def test_apps_destroy_lists_the_final_backups_it_kept(run, platform, tmp_path):
    deploy(platform, TYPES)
    run("addons:create", "postgresql", "-a", "shop", "--name", "shop-db")
    destroyed = run("apps:destroy", "shop", "--confirm", "shop")
    assert "Kept the final backup f001 of shop-db" in destroyed.stdout
    listed = run("pg:backups")
    assert "f001" in listed.stdout and "shop-db (destroyed)" in listed.stdout
    downloaded = run("pg:backups:download", "f001", "-a", "shop", "-o", str(tmp_path / "final.dump"))
    assert downloaded.exit_code == 0 and (tmp_path / "final.dump").read_bytes().startswith(b"PGDMP")
    assert run("pg:backups:delete", "f001", "-a", "shop", "--confirm", "shop").exit_code == 0
    assert BackupStore(platform.settings).list() == []
