"""The package's layering, checked from its source: imports point down (no cycles), none hides in
a function to dodge one, and the story of a release does not depend on Docker."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gitpaas"

#: imports made on first use, on purpose: docker-py, FastAPI, uvicorn and requests take a while to
#: load, and commands that read files (`gitpaas apps`, `releases`) need none of them
LOADED_ON_FIRST_USE = {
    ("gitpaas.platform", "gitpaas.scheduler.docker_local"), ("gitpaas.platform", "gitpaas.build.slugs"),
    ("gitpaas.platform", "gitpaas.scheduler.swarm"),
    ("gitpaas.platform", "gitpaas.build.buildpack"), ("gitpaas.platform", "gitpaas.build.dockerfile"),
    ("gitpaas.platform", "gitpaas.dockerutil"), ("gitpaas.cli.stack", "gitpaas.build.stack"),
    ("gitpaas.cli.server", "gitpaas.api.application"),
    # the Platform API client (requests) only when logged in to a server
    ("gitpaas.cli.common", "gitpaas.client.remote"), ("gitpaas.cli.session", "gitpaas.client.api"),
    # the group's own work before a command (`gitpaas --help` and a mistyped command need none of it)
    ("gitpaas.cli.group", "gitpaas.cli.common"), ("gitpaas.cli.group", "gitpaas.locks"),
    ("gitpaas.cli.group", "gitpaas.operations"), ("gitpaas.cli.group", "gitpaas.output"),
    ("gitpaas.cli.group", "gitpaas.settings"),
    ("gitpaas.platform", "gitpaas.router.nginx"), ("gitpaas.locks", "gitpaas.formation"),
    # the entry points hand their work to the home's fork server first (gitpaas.forkserver), and load
    # the command line or the deploy only when they run it themselves
    ("gitpaas.cli.main", "gitpaas.cli.group"), ("gitpaas.cli.main", "gitpaas.store.files"),
    ("gitpaas.hook", "gitpaas.settings"), ("gitpaas.hook", "gitpaas.platform"), ("gitpaas.hook", "gitpaas.receive"),
    ("gitpaas.hook", "gitpaas.errors"), ("gitpaas.hook", "gitpaas.identity"), ("gitpaas.hook", "gitpaas.output"),
    ("gitpaas.hook", "gitpaas.store.files"),
    # what the CLI's commands that change things need, and a command that reads a record does not
    *(("gitpaas.cli.backend", module) for module in (
        "gitpaas.events", "gitpaas.operations", "gitpaas.pipelines", "gitpaas.reviewapps", "gitpaas.accounts",
        "gitpaas.addons.backups", "gitpaas.addons.lifecycle", "gitpaas.addons.plans", "gitpaas.addons.store",
        "gitpaas.notify.drains", "gitpaas.notify.store")),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, list[tuple[str, bool]]]:
    """Each gitpaas module → the gitpaas modules it imports, and whether at its top level."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    found: dict[str, list[tuple[str, bool]]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gitpaas"):
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "lazy"
                  and node.args and isinstance(node.args[0], ast.Constant)):
                # `x = lazy("gitpaas.x")` (gitpaas.lazy): an import made on first use, wherever it is written
                edges += [(node.args[0].value, False)] if node.args[0].value in modules else []
                continue
            else:
                continue
            # (a package importing its own submodule, `from gitpaas.x import y` in x/__init__, is no cycle)
            edges += [(target, id(node) in top_level) for target in targets if target in modules and target != name]
        found[name] = edges
    return found


def test_no_import_cycle_among_gitpaas_modules():
    graph = {name: {target for target, _ in edges} for name, edges in imports().items()}
    visiting, done, cycles = [], set(), []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append(visiting[visiting.index(name):] + [name])
            return
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)
    for name in sorted(graph):
        visit(name)
    assert cycles == []


def test_no_gitpaas_import_hides_in_a_function():
    hidden = {(name, target) for name, edges in imports().items() for target, top in edges if not top}
    assert hidden <= LOADED_ON_FIRST_USE


def test_a_push_handed_to_the_fork_server_loads_only_its_client():
    code = "import sys, gitpaas.hook; print(sorted(m for m in sys.modules if m.startswith('gitpaas')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == str(["gitpaas", "gitpaas.forkserver", "gitpaas.forkserver.client", "gitpaas.home",
                                     "gitpaas.hook", "gitpaas.lazy"])


def test_the_story_of_a_release_imports_nothing_from_docker():
    code = ("import sys, gitpaas.pipeline, gitpaas.events, gitpaas.locks, gitpaas.operations; "
            "print(sorted(m for m in sys.modules if m == 'docker' or m.startswith('docker.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
