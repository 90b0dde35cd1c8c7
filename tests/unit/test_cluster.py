"""Choosing a home's scheduler and the swarm commands' refusals, in-process: one clear line each,
nothing recorded when something is wrong (the swarm itself is exercised in
tests/integration/test_swarm.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import Result

from fakes import deploy, make_platform
from gitpaas.addons import lifecycle
from gitpaas.addons.store import AddonStore
from gitpaas.errors import UsageError
from gitpaas.identity import OPERATOR
from gitpaas.output import NullOutput
from gitpaas.settings import Settings


def one_line_error(result: Result, words: str) -> None:
    assert result.exit_code != 0, result.output
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_the_default_scheduler_is_docker_local_and_the_swarm_commands_say_how_to_move(run):
    shown = run("scheduler", "--json")
    assert json.loads(shown.stdout) == {"scheduler": "docker-local"}
    one_line_error(run("nodes"), "scheduler:set swarm --manager URL --registry HOST:PORT")
    one_line_error(run("nodes:add"), "runs its processes on docker-local")


def test_scheduler_set_swarm_needs_its_manager_and_registry(run, home):
    one_line_error(run("scheduler:set", "swarm"), "needs --manager URL and --registry HOST:PORT")
    one_line_error(run("scheduler:set", "swarm", "--manager", "unix:///nowhere.sock"), "--registry")
    one_line_error(run("scheduler:set", "docker-local", "--registry", "r:5000"), "are for the swarm scheduler")
    unknown = run("scheduler:set", "kubernetes")  # (click's own usage error)
    assert unknown.exit_code == 2 and "'kubernetes' is not one of 'docker-local', 'swarm'" in unknown.stderr


def test_an_unreachable_manager_is_one_line_and_records_nothing(run, home):
    result = run("scheduler:set", "swarm", "--manager", "unix:///nowhere/docker.sock", "--registry", "127.0.0.1:9")
    one_line_error(result, "cannot reach the swarm manager's engine")
    assert "/nowhere" not in result.stderr
    assert Settings.from_env({"GITPAAS_HOME": str(home)}).scheduler == "docker-local"


def test_the_scheduler_cannot_change_under_running_apps(tmp_path, run, home):
    platform = make_platform(tmp_path)
    platform.apps.create("shop")
    deploy(platform)
    one_line_error(run("scheduler:set", "swarm", "--manager", "unix:///x.sock", "--registry", "r:5000", obj=platform),
                   "shop has releases running on docker-local")


def test_the_choice_is_recorded_in_home_json(run, home):
    assert run("apps:create", "shop").exit_code == 0  # (an app without a release does not hold it back)
    chosen = run("scheduler:set", "docker-local")
    assert chosen.exit_code == 0, chosen.output
    assert json.loads((home / "home.json").read_text())["scheduler"] == "docker-local"
    recorded = {**json.loads((home / "home.json").read_text()), "scheduler": "swarm",
                "swarm_manager": "tcp://10.0.0.1:2376", "swarm_registry": "10.0.0.1:5000"}
    (home / "home.json").write_text(json.dumps(recorded))
    settings = Settings.from_env({"GITPAAS_HOME": str(home)})
    assert (settings.scheduler, settings.swarm_manager, settings.swarm_registry) == (
        "swarm", "tcp://10.0.0.1:2376", "10.0.0.1:5000")
    assert json.loads(run("scheduler", "--json").stdout) == {
        "scheduler": "swarm", "manager": "tcp://10.0.0.1:2376", "registry": "10.0.0.1:5000"}


def test_a_swarm_home_refuses_add_ons_before_recording_anything(tmp_path):
    platform = make_platform(tmp_path, scheduler="swarm")
    platform.apps.create("shop")
    with pytest.raises(UsageError, match="add-ons need the docker-local scheduler"):
        lifecycle.create(platform, "shop", OPERATOR, NullOutput(), "heroku-postgresql:essential-0")
    assert AddonStore(platform.settings).of_app("shop") == []
