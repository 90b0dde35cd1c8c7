"""Real apps deploy unchanged: the Debian stacks, the runtime versions apps ask for, and the
buildpack behaviours Heroku users rely on — each sample app pushed with git and fetched over HTTP."""

from __future__ import annotations

import json
import re

import pytest

from gitpaas import labels
from harness import APPS

STATIC_ROOT_LINE = "STATIC_ROOT = BASE_DIR / \"staticfiles\"\n"


def deployed(result) -> bool:
    return result.returncode == 0


def settings_without_static_root() -> str:
    text = (APPS / "django-whitenoise" / "mysite" / "settings.py").read_text()
    assert STATIC_ROOT_LINE in text
    return text.replace(STATIC_ROOT_LINE, "")


def page(home, app: str) -> str:
    answer = home.get(app)
    assert answer.status_code == 200, answer.text[:500]
    return answer.text


def test_a_django_tutorial_app_deploys_unchanged_and_moves_between_stacks(home):
    home.create_app("blog")
    assert "Stack:            trixie" in home.gitpaas("apps:info", "-a", "blog").stdout

    # collectstatic runs for a Django app; its failure rejects the push with Django's own message
    broken = {"mysite/settings.py": settings_without_static_root()}
    push = home.push("blog", "django-whitenoise", files=broken)
    assert push.returncode != 0
    assert "-----> Python (Django) app detected" in push.stderr
    assert "Python 3.13.5 (.python-version asks for 3.13)" in push.stderr  # past the comment line
    assert ("Django's collectstatic failed: django.core.exceptions.ImproperlyConfigured: You're using the "
            "staticfiles app without having set the STATIC_ROOT setting to a filesystem path.") in push.stderr

    # DISABLE_COLLECTSTATIC=1 skips it: the app deploys, and every page is the 500 a newcomer met
    home.gitpaas("config:set", "DISABLE_COLLECTSTATIC=1", "-a", "blog")
    push = home.push("blog", "django-whitenoise", files=broken)
    assert deployed(push), push.stderr
    assert "Skipping Django's collectstatic (DISABLE_COLLECTSTATIC is set)" in push.stderr
    assert home.get("blog").status_code == 500

    # the app as it is: collectstatic, whitenoise's hashed files, WEB_CONCURRENCY from the dyno size
    home.gitpaas("config:unset", "DISABLE_COLLECTSTATIC", "-a", "blog")
    push = home.push("blog", "django-whitenoise")
    assert deployed(push), push.stderr
    assert "Running Django's collectstatic: python manage.py collectstatic --noinput" in push.stderr
    # (its config vars changed since the last build: built from the stack, the virtualenv from the cache)
    assert "Reusing the cached virtualenv (requirements.txt and Python 3.13.5 unchanged)" in push.stderr
    assert "Building on the previous build's slug" not in push.stderr
    text = page(home, "blog")
    assert "Hello from Django" in text and "Python 3.13.5; WEB_CONCURRENCY=2" in text  # 512 MB: 2 workers
    css = re.search(r'href="(/static/css/site\.[0-9a-f]{12}\.css)"', text)
    assert css, text
    stylesheet = home.get("blog", css[1])
    assert stylesheet.status_code == 200 and "font-family" in stylesheet.text
    on_trixie = json.loads(home.gitpaas("releases:info", "-a", "blog", "--json").stdout)
    assert on_trixie["stack"] == "trixie"

    # Python 3.14 is not on trixie: refused with the one command that switches
    newer = {".python-version": "# The Python version to use for the project.\n3.14\n"}
    push = home.push("blog", "django-whitenoise", files=newer)
    assert push.returncode != 0
    assert ("Python 3.14 (.python-version) is not on the trixie stack, which has 3.13; the forky stack has it: "
            "run `gitpaas stack:set forky -a blog` and push again") in push.stderr
    assert "Traceback" not in push.stderr

    # stack:set takes effect on the next build only
    said = home.gitpaas("stack:set", "forky", "-a", "blog").stdout
    assert "Setting stack to forky... done" in said and "You will need to redeploy blog" in said
    assert home.gitpaas("stack", "-a", "blog").stdout.splitlines()[1:] == [
        "  bookworm", "* trixie", "  forky (active on next deploy)"]
    assert "Python 3.13.5" in page(home, "blog")
    push = home.push("blog", "django-whitenoise", files=newer)
    assert deployed(push), push.stderr
    assert "-----> Building on the forky stack with buildpacks" in push.stderr
    assert re.search(r"Python 3\.14\.\d+ \(\.python-version asks for 3\.14\)", push.stderr)
    assert re.search(r"Python 3\.14\.\d+; WEB_CONCURRENCY=2", page(home, "blog"))
    info = home.json("apps:info", "-a", "blog")
    assert (info["stack"], info["build_stack"]) == ("forky", "forky")
    on_forky = json.loads(home.gitpaas("releases:info", "-a", "blog", "--json").stdout)
    assert on_forky["stack"] == "forky"

    # a rollback to the release built on trixie runs its slug as it was
    home.gitpaas("rollback", f"v{on_trixie['version']}", "-a", "blog")
    assert "Python 3.13.5" in page(home, "blog")
    info = home.json("apps:info", "-a", "blog")
    assert (info["stack"], info["build_stack"]) == ("trixie", "forky")

    # and back: trixie again, built there
    home.gitpaas("stack:set", "trixie", "-a", "blog")
    push = home.push("blog", "django-whitenoise", files={"BODY": "back"})
    assert deployed(push), push.stderr
    assert "-----> Building on the trixie stack with buildpacks" in push.stderr
    assert "Python 3.13.5" in page(home, "blog")
    assert json.loads(home.gitpaas("releases:info", "-a", "blog", "--json").stdout)["stack"] == "trixie"


def test_stacks_lists_what_the_server_has_and_can_build(home):
    listed = {row["name"]: row for row in home.json("stacks")}
    assert list(listed) == ["bookworm", "trixie", "forky"]
    assert listed["trixie"]["default"] and listed["trixie"]["status"] == "current"
    assert listed["trixie"]["python"] == ["3.13.5"] and listed["bookworm"]["python"] == ["3.11.2"]
    assert listed["forky"]["state"] == "beta"
    table = home.gitpaas("stacks").stdout
    assert "* trixie" in table and "Debian 13 (stable)" in table


@pytest.mark.parametrize("manager, source, lockfile, install", [
    ("pipenv", "python-pipenv", "Pipfile.lock", "Installing dependencies with pipenv install --deploy"),
    ("poetry", "python-poetry", "poetry.lock", "Installing dependencies with poetry sync --only main"),
    ("uv", "python-uv", "uv.lock", "Installing dependencies with uv sync --locked"),
])
def test_python_apps_with_a_lock_file_install_with_their_package_manager(home, docker_client, manager, source,
                                                                         lockfile, install):
    home.create_app(manager)
    home.gitpaas("config:set", "GREETING=hello hooks", "-a", manager)
    push = home.push(manager, source)
    assert deployed(push), push.stderr
    assert install in push.stderr
    installed = docker_client.containers.run(
        home.release(manager, 1)["image"], entrypoint=["ls", "/app/.venv/lib/python3.13/site-packages"],
        remove=True, labels={labels.HOME: str(home.path)}).decode().split()
    assert "gunicorn" in installed and "pytest" not in installed, "development dependencies stay out of the slug"
    hooks = ""
    if manager == "uv":  # its bin/pre_compile (with the config vars) and bin/post_compile (after the install)
        assert "-----> Running bin/pre_compile" in push.stderr and "pre_compile saw GREETING=hello hooks" in push.stderr
        assert "-----> Running bin/post_compile" in push.stderr
        hooks = " [hello hooks; post_compile found gunicorn 27.0.1]"
    assert page(home, manager) == f"hello from a {manager} app on Python 3.13.5 (gunicorn 27.0.1){hooks}\n"

    warm = home.push(manager, source, files={"BODY": "again"})
    assert deployed(warm), warm.stderr
    assert f"Reusing the virtualenv of the previous build ({lockfile} and Python 3.13.5 unchanged)" in warm.stderr
    assert install not in warm.stderr
    assert page(home, manager).startswith(f"hello from a {manager} app")


@pytest.mark.parametrize("manager", ["yarn", "pnpm"])
def test_node_apps_with_yarn_or_pnpm_build_through_corepack(home, manager):
    home.create_app(manager)
    push = home.push(manager, f"node-{manager}")
    assert deployed(push), push.stderr  # (node-yarn's app.json has // and /* */ comments: accepted)
    assert "Node.js 20.19.2 (package.json engines.node asks for >=18)" in push.stderr
    assert "-----> Running heroku-prebuild" in push.stderr and "-----> Running heroku-postbuild" in push.stderr
    assert page(home, manager) == (f"{manager} app: NODE_ENV=production\n"
                                   "prebuild=ran postbuild=ran build=skipped\n"
                                   "devDependency=absent ms=172800000\n"), push.stderr

    warm = home.push(manager, f"node-{manager}", files={"BODY": "again"})
    assert deployed(warm), warm.stderr
    # (with devDependencies, pruned from the slug: restored whole from the cache, for the build scripts)
    assert "Restoring node_modules from the build cache" in warm.stderr
    assert page(home, manager).startswith(f"{manager} app: NODE_ENV=production")


def test_a_runtime_no_stack_has_is_refused_with_the_versions_there_are(home):
    home.create_app("old")
    push = home.push("old", "python-unavailable")
    assert push.returncode != 0
    assert ("Python 3.9 (.python-version) is on no stack of this server: it has 3.11 (bookworm); 3.13 (trixie); "
            "3.14, 3.13, 3.15 (forky)") in push.stderr
    assert "Installing" not in push.stderr, "refused before anything is installed"

    package = json.loads((APPS / "node-yarn" / "package.json").read_text())
    package["engines"]["node"] = "16.x"
    push = home.push("old", "node-yarn", files={"package.json": json.dumps(package)})
    assert push.returncode != 0
    assert re.search(r"Node\.js 16\.x \(package\.json engines\.node\) is on no stack of this server: it has "
                     r"18\.20\.\d+ \(bookworm\), 20\.19\.2 \(trixie\), 24\.21", push.stderr), push.stderr


def test_an_app_created_on_bookworm_builds_with_its_python_311(home):
    assert "Creating old-stack... done" in home.gitpaas("apps:create", "old-stack", "--stack", "bookworm").stdout
    push = home.push("old-stack", "python-pypi", files={".python-version": "3.11\n"})
    assert deployed(push), push.stderr
    assert "-----> Building on the bookworm stack with buildpacks" in push.stderr
    assert "Python 3.11.2 (.python-version asks for 3.11)" in push.stderr
    assert page(home, "old-stack").startswith("hello from python v1: humanize 4.12.3")
    assert home.json("apps:info", "-a", "old-stack")["stack"] == "bookworm"
