"""A gitpaas command loads what it uses and nothing else: ``--help`` no command module, a command
that reads records neither Docker's client nor the pipeline, nginx's templates or git. (What that
buys in seconds is measured by bench/deploy_speed.py, never asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fakes import deploy
from gitpaas.cli import commands
from gitpaas.cli.group import manifest_source

#: what a command reading records must not load: the engine's client and HTTP stack, the story of
#: a release, the builders, the router's templates, git
HEAVY = ("docker", "requests", "urllib3", "gitpaas.pipeline", "gitpaas.events", "gitpaas.operations",
         "gitpaas.build", "gitpaas.router.nginx", "jinja2", "dulwich", "gitpaas.scheduler.docker_local", "yaml")

PROBE = """
import json, sys
from gitpaas.cli.main import cli
try:
    cli.main(sys.argv[1:], prog_name="gitpaas")
except SystemExit as exit:
    status = exit.code
print("\\nLOADED " + json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def gitpaas(home: Path, *args: str) -> tuple[str, int, list[str]]:
    """``gitpaas ARGS`` in a fresh interpreter: its output, its exit status, the modules it loaded."""
    env = {**os.environ, "GITPAAS_HOME": str(home), "GITPAAS_HTTP_PORT": "8080", "GITPAAS_SCHEDULER": ""}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60)
    output, _, loaded = done.stdout.rpartition("\nLOADED ")
    facts = json.loads(loaded)
    return output + done.stderr, facts["status"], facts["modules"]


def loaded_of(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_the_list_of_commands_is_the_commands_modules_say():
    assert Path(commands.__file__).read_text() == manifest_source(), (
        "gitpaas/cli/commands.py is out of date: write it anew with the command in its docstring")


def test_help_lists_every_command_without_loading_one(tmp_path):
    output, status, modules = gitpaas(tmp_path / "home", "--help")
    assert status == 0
    for name in ("apps:create", "releases", "ps:scale", "config:set", "rollback", "nodes:remove"):
        assert f"\n  {name} " in output
    assert "List an app's releases, newest first." in output
    assert "git:credential" not in output, "a hidden command stays hidden"
    assert loaded_of(modules, commands.MODULES) == []


def test_commands_reading_records_load_nothing_heavy(platform):
    platform.apps.config("shop").replace({"GREETING": "hi"})
    deploy(platform)
    home = platform.settings.home

    output, status, modules = gitpaas(home, "releases", "-a", "shop", "-n", "15")
    assert status == 0 and "v1 (current)" in output and "Deploy abc1234" in output
    assert loaded_of(modules, HEAVY) == []

    output, status, modules = gitpaas(home, "releases", "-a", "shop", "--json")
    assert status == 0 and json.loads(output)[0]["version"] == 1
    assert loaded_of(modules, (*HEAVY, "rich")) == []

    output, status, modules = gitpaas(home, "config", "-a", "shop")
    assert status == 0 and "GREETING" in output and "hi" in output
    assert loaded_of(modules, HEAVY) == []


def test_a_mistyped_command_is_one_line_and_loads_no_command(tmp_path):
    output, status, modules = gitpaas(tmp_path / "home", "releasez")
    assert status == 2 and "No such command 'releasez'" in output and "Traceback" not in output
    assert loaded_of(modules, commands.MODULES) == []
