"""Bare app repositories and the hooks gitpaas installs into them."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from dulwich.repo import Repo
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gitpaas.errors import EnvironmentProblem
from gitpaas.settings import Settings

#: The repository's ``hooks/`` folder: templates of the hooks installed into every app repo.
HOOK_TEMPLATES = Path(__file__).resolve().parents[2] / "hooks"
DEPLOY_BRANCHES = ("refs/heads/main", "refs/heads/master")


def init_bare(path: Path) -> None:
    repo = Repo.init_bare(str(path), mkdir=True, default_branch=b"main")
    repo.close()


def install_hooks(repo_path: Path, settings: Settings, python: str | None = None) -> None:
    """Render every template in ``hooks/`` into the repo's hooks folder, executable."""
    if not HOOK_TEMPLATES.is_dir():
        raise EnvironmentProblem(f"hook templates not found at {HOOK_TEMPLATES}; install gitpaas from its source tree")
    env = Environment(loader=FileSystemLoader(str(HOOK_TEMPLATES)), undefined=StrictUndefined, keep_trailing_newline=True)
    values = {"home": shlex.quote(str(settings.home)), "python": shlex.quote(python or sys.executable)}
    target = repo_path / "hooks"
    target.mkdir(parents=True, exist_ok=True)
    for template in sorted(HOOK_TEMPLATES.iterdir()):
        if template.name.startswith(".") or template.suffix == ".md":
            continue
        path = target / template.name
        path.write_text(env.get_template(template.name).render(values))
        path.chmod(0o755)
