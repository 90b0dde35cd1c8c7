"""The ``gitpaas`` command in-process with click's CliRunner: output, exit codes, no tracebacks.

Commands that only touch the home run from the environment (``GITPAAS_HOME`` in tmp_path); those
that would reach Docker or nginx get a Platform built on small in-memory fakes.
"""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import Result

from fakes import deploy, make_platform
from gitpaas.errors import ReleaseFailed
from gitpaas.platform import Platform
from gitpaas.scheduler import RunResult


@pytest.fixture
def fake_platform(tmp_path) -> Platform:
    """The home the commands see (tmp_path/home), on the shared fakes."""
    return make_platform(tmp_path)


def assert_one_line_error(result: Result, exit_code: int, words: str) -> None:
    assert result.exit_code == exit_code, result.output
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1
    assert words in result.stderr
    assert result.stderr.startswith(" !    ")
    assert "Traceback" not in result.output


# --- apps --------------------------------------------------------------------------------------


def test_apps_create_then_list_and_info(run, home):
    created = run("apps:create", "shop")
    assert created.exit_code == 0, created.output
    assert created.stdout.splitlines() == [
        "Creating shop... done",
        f"http://shop.localhost:8080/ | {home / 'apps/shop/repo.git'}",
        f"Deploy with: git push {home / 'apps/shop/repo.git'} main",
    ]
    assert (home / "apps/shop/repo.git/hooks/pre-receive").is_file()
    assert json.loads((home / "home.json").read_text())["http_port"] == 8080

    listed = run("apps")
    assert listed.exit_code == 0
    assert "shop" in listed.stdout and "http://shop.localhost:8080/" in listed.stdout

    info = run("apps:info", "-a", "shop", "--json")
    assert info.exit_code == 0
    data = json.loads(info.stdout)
    assert {"name", "git_url", "web_url", "created_at", "current_release", "formation"} <= set(data)
    assert (data["name"], data["git_url"], data["web_url"]) == (
        "shop", str(home / "apps/shop/repo.git"), "http://shop.localhost:8080/")
    assert (data["current_release"], data["formation"]) == (None, [])

    text = run("apps:info", "-a", "shop")
    assert text.exit_code == 0
    assert text.stdout.splitlines()[0] == "=== shop"
    assert "Current Release:  -" in text.stdout


def test_apps_on_an_empty_home(run):
    result = run("apps")
    assert result.exit_code == 0
    assert result.stdout == "No apps yet. Create one with `gitpaas apps:create NAME`.\n"
    assert json.loads(run("apps", "--json").stdout) == []


def test_apps_create_twice_is_exit_4(run):
    run("apps:create", "shop")
    assert_one_line_error(run("apps:create", "shop"), 4, "app 'shop' already exists")


@pytest.mark.parametrize("name", ["Shop", "1shop", "shop-", "my_shop", "../shop", "x" * 31])
def test_invalid_names_are_exit_2(run, home, name):
    assert_one_line_error(run("apps:create", name), 2, f"invalid app name {name!r}")
    assert_one_line_error(run("apps:info", "-a", name), 2, "invalid app name")
    assert not (home / "apps").exists() or list((home / "apps").iterdir()) == []


def test_unknown_app_is_exit_3(run):
    assert_one_line_error(run("apps:info", "-a", "ghost"), 3, "app 'ghost' not found")
    assert_one_line_error(run("releases", "-a", "ghost"), 3, "app 'ghost' not found")


def test_apps_destroy_without_confirm_is_exit_2_and_removes_nothing(run, home):
    run("apps:create", "shop")
    result = run("apps:destroy", "shop")
    assert_one_line_error(result, 2, "run again with --confirm shop")
    assert_one_line_error(run("apps:destroy", "shop", "--confirm", "shopp"), 2, "--confirm shop")
    assert (home / "apps/shop/app.json").is_file()
    assert "shop" in run("apps").stdout


def test_apps_destroy_with_confirm_removes_processes_route_and_records(run, home, fake_platform):
    run("apps:create", "shop")
    deploy(fake_platform)
    assert fake_platform.router.routes
    result = run("apps:destroy", "-a", "shop", "--confirm", "shop", obj=fake_platform)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Destroying shop (including all its releases and add-ons)... done\n"
    assert fake_platform.scheduler.destroyed == ["shop"]
    assert fake_platform.router.routes == {}
    assert not (home / "apps/shop").exists()
    assert_one_line_error(run("apps:info", "-a", "shop"), 3, "not found")


# --- releases ----------------------------------------------------------------------------------


def test_releases_of_an_app_without_releases(run, home):
    run("apps:create", "shop")
    result = run("releases", "-a", "shop")
    assert result.exit_code == 0
    assert result.stdout == f"shop has no releases yet. Deploy with: git push {home / 'apps/shop/repo.git'} main\n"
    assert json.loads(run("releases", "-a", "shop", "--json").stdout) == []
    assert_one_line_error(run("releases:info", "-a", "shop"), 2, "shop has no releases yet")


def test_releases_info_of_a_missing_version_is_exit_3_one_line(run):
    run("apps:create", "shop")
    result = run("releases:info", "v9", "-a", "shop")
    assert_one_line_error(result, 3, "app 'shop' has no release v9")
    assert result.stdout == ""


def test_releases_info_of_a_non_version_is_exit_2(run):
    run("apps:create", "shop")
    assert_one_line_error(run("releases:info", "nine", "-a", "shop"), 2, "'nine' is not a release version")


def test_releases_list_info_and_output_after_a_deploy(run, fake_platform):
    run("apps:create", "shop")
    deploy(fake_platform)
    fake_platform.scheduler.run_result = RunResult(exit_status=1)
    with pytest.raises(ReleaseFailed):
        deploy(fake_platform)

    listed = run("releases", "-a", "shop")
    assert listed.exit_code == 0
    rows = [line.split() for line in listed.stdout.splitlines() if line.split()[0] in ("v1", "v2")]
    assert [(row[0], row[-1]) for row in rows] == [("v2", "failed"), ("v1", "succeeded")]
    assert "v1 (current)" in listed.stdout

    as_json = json.loads(run("releases", "-a", "shop", "--json", "-n", "1").stdout)
    assert [(r["version"], r["status"], r["current"]) for r in as_json] == [(2, "failed", False)]

    info = run("releases:info", "-a", "shop")  # the latest by default
    assert info.exit_code == 0
    assert info.stdout.splitlines()[0] == "=== Release v2"
    assert "Status:        failed: release command exited with status 1" in info.stdout
    assert json.loads(run("releases:info", "1", "-a", "shop", "--json").stdout)["current"] is True

    output = run("releases:output", "v1", "-a", "shop")
    assert (output.exit_code, output.stdout) == (0, "Migrating…\ndone\n")


def test_releases_output_of_a_release_without_a_release_command(run, fake_platform):
    run("apps:create", "shop")
    deploy(fake_platform, {"web": "python3 app.py"})
    result = run("releases:output", "v1", "-a", "shop")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "v1 ran no release command.\n"


# --- ps ----------------------------------------------------------------------------------------


def test_ps_scale_that_cannot_be_read_is_exit_2(run):
    run("apps:create", "shop")
    for change in ("web=x", "web", "=2", "web=-1"):
        assert_one_line_error(run("ps:scale", change, "-a", "shop"), 2, f"cannot read {change!r}")


def test_ps_scale_before_any_release_is_exit_2(run, fake_platform):
    run("apps:create", "shop")
    assert_one_line_error(run("ps:scale", "web=2", "-a", "shop", obj=fake_platform), 2, "shop has no release yet")


def test_ps_scale_and_ps_with_a_fake_scheduler(run, fake_platform):
    run("apps:create", "shop")
    deploy(fake_platform)

    scaled = run("ps:scale", "web=2", "worker=1", "-a", "shop", obj=fake_platform)
    assert scaled.exit_code == 0, scaled.output
    assert scaled.stdout.splitlines()[-1] == "Scaling shop... done, now running web=2, worker=1"
    assert "-----> Starting web.2, worker.1 of v1" in scaled.stdout
    assert sorted(p.name for p in fake_platform.scheduler.running) == ["web.1", "web.2", "worker.1"]
    assert len(fake_platform.router.routes["shop"][1]) == 2
    assert json.loads(run("apps:info", "-a", "shop", "--json").stdout)["formation"] == [
        {"type": "web", "quantity": 2, "command": "python3 app.py"},
        {"type": "worker", "quantity": 1, "command": "python3 worker.py"},
    ]

    listed = run("ps", "-a", "shop", obj=fake_platform)
    assert listed.exit_code == 0
    assert "web.2" in listed.stdout and "python3 worker.py" in listed.stdout

    dynos = json.loads(run("ps", "-a", "shop", "--json", obj=fake_platform).stdout)
    assert sorted(d["name"] for d in dynos) == ["web.1", "web.2", "worker.1"]
    assert {d["release"]["version"] for d in dynos} == {1}

    assert_one_line_error(run("ps:scale", "release=1", "-a", "shop", obj=fake_platform), 2, "cannot be scaled")
    assert_one_line_error(run("ps:scale", "clock=1", "-a", "shop", obj=fake_platform), 2, "no process type 'clock'")
    assert_one_line_error(run("ps:scale", "web=101", "-a", "shop", obj=fake_platform), 2, "between 0 and 100")


def test_ps_of_an_app_with_nothing_running(run, fake_platform):
    run("apps:create", "shop")
    result = run("ps", "-a", "shop", obj=fake_platform)
    assert (result.exit_code, result.stdout) == (0, "No processes are running for shop.\n")


def test_a_home_made_by_an_older_gitpaas_gets_its_entry_points_rewritten(run, home):
    """After an upgrade that moved the hook's module, pushes to existing apps keep working."""
    from gitpaas.settings import ENTRY_POINTS

    run("apps:create", "shop")
    hook = home / "apps/shop/repo.git/hooks/pre-receive"
    text = hook.read_text()
    hook.write_text(text[:text.index("exec ")] + f"exec {sys.executable} -m gitpaas.git.hook pre-receive\n")
    record = json.loads((home / "home.json").read_text())
    del record["entry_points"]
    (home / "home.json").write_text(json.dumps(record))
    home.chmod(0o755)
    old_log = home / "apps/shop/releases-output-from-before.log"
    old_log.write_text("SECRET=hunter2\n")
    old_log.chmod(0o644)

    assert run("apps").exit_code == 0
    assert "/forkserver/hook_client.py hook pre-receive" in hook.read_text()
    assert (oct(home.stat().st_mode & 0o777), oct(old_log.stat().st_mode & 0o777)) == ("0o700", "0o600")
    assert json.loads((home / "home.json").read_text())["entry_points"] == ENTRY_POINTS
    before = hook.stat().st_mtime_ns
    assert run("apps").exit_code == 0 and hook.stat().st_mtime_ns == before, "nothing to do the second time"


# --- numbers and values the shells must refuse in one line (issue 11) ----------------------------


@pytest.mark.parametrize("args, words", [
    (("rollback", "v²"), "'v²' is not a release version"), (("releases:info", "²"), "'²' is not a release version"),
    (("releases:output", "v١"), "'v١' is not a release version"), (("ps:scale", "web=²"), "cannot read 'web=²'"),
    (("ps:scale", "web=" + "9" * 5000), "cannot read 'web=999"),
    (("releases:retention", "--keep", "²"), "--keep takes a number or 'all', not '²'"),
])
def test_digits_that_are_not_ascii_are_exit_2_not_a_traceback(run, fake_platform, args, words):
    run("apps:create", "shop")
    deploy(fake_platform)
    assert_one_line_error(run(*args, "-a", "shop", obj=fake_platform), 2, words)


@pytest.mark.parametrize("assignment, words", [
    ("BAD=\udcff", "the value of BAD is not valid UTF-8 text"),  # a non-UTF-8 byte in argv, as Python decodes it
    ("NUL=a\x00b", "contains a NUL byte"), ("BIG=" + "x" * 40_000, "larger than 32 KiB"),
])
def test_config_set_refuses_what_no_release_could_use(run, home, assignment, words):
    run("apps:create", "shop")
    assert_one_line_error(run("config:set", assignment, "-a", "shop"), 2, words)
    stored = home / "apps/shop/config.json"
    assert not stored.exists() or json.loads(stored.read_text()) == {}
