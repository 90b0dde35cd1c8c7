"""Apps without a Dockerfile, built by buildpacks: real pushes with git, real PyPI and npm, fetched
over HTTP through the router."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest

from gitpaas import labels

BUILDPACKS = Path(__file__).resolve().parents[1] / "buildpacks"
SCRIPT_BODY = "hello from a shell script on web.1 (no greeting)\n"
NO_SUCH_PACKAGE = "gitpaas-no-such-package-4f1c9e"


def deployed(result) -> bool:
    return result.returncode == 0


def build_log(home, app: str, version: int) -> str:
    return Path(home.release(app, version)["build_log"]).read_text()


def build_containers(docker_client, home) -> list:
    """The home's build containers now; one removed between the listing and its inspection (a build
    ending while this polls) is not one (docker-py would raise NotFound for it)."""
    return docker_client.containers.list(all=True, ignore_removed=True, filters=labels.filters(
        {labels.HOME: str(home.path), labels.ROLE: "build"}))


def slug_entries(docker_client, home, image: str, folder: str) -> set[str] | None:
    """The names in ``folder`` of a slug image (None when it has no such folder), read from a
    created, never started, container (labelled, so cleanup finds it)."""
    container = docker_client.containers.create(image, labels={labels.HOME: str(home.path)})
    try:
        stream, _ = container.get_archive(folder)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return {name.split("/")[1] for name in tar.getnames() if name.count("/") >= 1}
    except docker.errors.NotFound:
        return None
    finally:
        container.remove(force=True)


def test_python_app_installs_from_pypi_and_the_second_push_reuses_the_cache(home, docker_client):
    home.create_app("py")
    first = home.push("py", "python-pypi")
    assert deployed(first), first.stderr
    for line in ("-----> Building on the trixie stack with buildpacks", "-----> Python app detected",
                 "Python 3.13.5 (.python-version asks for 3.13)", "-----> Installing requirements with pip",
                 "Successfully installed humanize-4.12.3", "-----> Slug image", "-----> Deployed v1"):
        assert line in first.stderr, line
    assert home.get("py").text == ("hello from python v1: humanize 4.12.3 says 1234567 is 1.2 million "
                                   "(venv: /app/.venv)\n")
    record = home.release("py", 1)
    assert record["process_types"] == {"web": "python app.py"}

    # The slug: labelled like every gitpaas image, /app and nothing of the build (ENV_DIR, buildpacks).
    image = docker_client.images.get(record["image"])
    assert image.labels[labels.APP] == "py" and image.labels[labels.ROLE] == "slug"
    assert image.attrs["Config"]["Env"][0].startswith("PATH=/app/.venv/bin:")
    assert slug_entries(docker_client, home, record["image"], "/app") == {
        ".python-version", ".venv", ".profile.d", "BODY", "Procfile", "app.py", "requirements.txt"}
    assert slug_entries(docker_client, home, record["image"], "/gitpaas") is None
    assert not build_containers(docker_client, home)

    # Warm: the build stands on v1's slug, whose .venv stays in place (nothing copied, nothing
    # committed again); everything else of /app is the new tree's, so a file the push dropped is gone.
    second = home.push("py", "python-pypi", files={"BODY": "v2", "gone.txt": "only in v2\n"})
    assert deployed(second), second.stderr
    assert "-----> Reusing the virtualenv of the previous build (requirements.txt and Python 3.13.5 unchanged)" \
        in second.stderr
    assert "Building on the previous build's slug" in second.stderr
    assert "Installing requirements with pip" not in second.stderr and "humanize-4.12.3" not in second.stderr
    assert home.get("py").text.startswith("hello from python v2: humanize 4.12.3 says 1234567 is 1.2 million")
    cold, warm = build_log(home, "py", 1), build_log(home, "py", 2)
    assert "Successfully installed humanize-4.12.3" in cold and "Reusing the virtualenv of the previous build" in warm
    assert len(warm.splitlines()) < len(cold.splitlines()), "the warm build does less"
    first_layers, second_layers = (docker_client.images.get(home.release("py", version)["image"]).attrs["RootFS"]["Layers"]
                                   for version in (1, 2))
    assert second_layers[:-1] == first_layers, "v2's slug is v1's plus one layer"
    third = home.push("py", "python-pypi", files={"BODY": "v3"})
    assert deployed(third) and "Reusing the virtualenv of the previous build" in third.stderr, third.stderr
    assert slug_entries(docker_client, home, home.release("py", 3)["image"], "/app") == {
        ".python-version", ".venv", ".profile.d", "BODY", "Procfile", "app.py", "requirements.txt"}, "gone.txt went"
    assert home.get("py").text.startswith("hello from python v3: humanize 4.12.3")

    cache = home.path / "apps" / "py" / "cache"
    # (pip's own cache, /cache/pip, fills only when the index's answers say they may be cached)
    assert {entry.name for entry in cache.iterdir()} - {"pip"} == {"python"}
    assert (home.path / "apps" / "py" / "slug-base.json").is_file(), "out of the build's reach"
    cleared = home.gitpaas("builds:cache:clear", "-a", "py")
    assert cleared.stdout.startswith("Clearing the build cache of py... done, freed ")
    assert not list(cache.iterdir()) and not (home.path / "apps" / "py" / "slug-base.json").exists()
    fourth = home.push("py", "python-pypi", files={"BODY": "v4"})
    assert deployed(fourth), fourth.stderr
    assert "-----> Installing requirements with pip" in fourth.stderr and "Reusing" not in fourth.stderr
    assert "Building on the previous build's slug" not in fourth.stderr, "a cleared cache builds from the stack"


def test_a_failed_build_and_a_failed_release_leave_the_cache_alone(home, docker_client):
    home.create_app("keep")
    assert deployed(home.push("keep", "python-pypi"))
    body = home.get("keep").text

    broken = home.push("keep", "python-pypi", files={
        "BODY": "v2", "requirements.txt": f"humanize==4.12.3\n{NO_SUCH_PACKAGE}==1.0\n"})
    assert broken.returncode != 0
    assert f"No matching distribution found for {NO_SUCH_PACKAGE}==1.0" in broken.stderr, "pip's own message"
    assert "build failed: buildpack python: pip could not install requirements.txt" in broken.stderr
    assert "keep keeps running v1, untouched" in broken.stderr

    failing_release = home.push("keep", "python-pypi", files={
        "BODY": "v3", "Procfile": "web: python app.py\nrelease: echo migration failed; exit 1\n"})
    assert failing_release.returncode != 0 and "release v2 failed" in failing_release.stderr
    assert home.get("keep").text == body

    again = home.push("keep", "python-pypi", files={"BODY": "v4"})
    assert deployed(again), again.stderr
    # (on the slug the failed release left, or from the cache: either way warm, nothing reinstalled)
    assert re.search(r"Reusing the (cached virtualenv|virtualenv of the previous build) \(requirements.txt and "
                     r"Python 3.13.5 unchanged\)", again.stderr), again.stderr
    assert home.get("keep").text.startswith("hello from python v4")
    assert not build_containers(docker_client, home)


def test_node_app_with_npm_ci_a_build_script_and_npm_start(home):
    home.create_app("node")
    first = home.push("node", "node-npm")
    assert deployed(first), first.stderr
    for line in ("-----> Node.js app detected", "-----> Installing dependencies with npm ci", "added 1 package",
                 "-----> Running the build script (npm run build)", "wrote build/message.txt",
                 "Default types for buildpack -> web"):
        assert line in first.stderr, line
    assert home.get("node").text == "hello from node v1: ms('2 days') is 172800000, built by npm run build\n"
    assert home.release("node", 1)["process_types"] == {"web": "npm start"}

    second = home.push("node", "node-npm", files={"BODY": "v2"})
    assert deployed(second), second.stderr
    assert ("-----> Reusing node_modules of the previous build (package.json and package-lock.json unchanged)"
            in second.stderr)
    assert "npm ci" not in second.stderr
    assert home.get("node").text.startswith("hello from node v2: ms('2 days') is 172800000")


#: a Node app whose one package is a devDependency: installed for the build, pruned from the slug
DEV_ONLY = {
    "package.json": json.dumps({"name": "gitpaas-node-sample", "version": "1.0.0", "private": True,
                                "scripts": {"start": "node server.js"}, "devDependencies": {"ms": "2.1.3"}}),
    "package-lock.json": json.dumps({
        "name": "gitpaas-node-sample", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
        "packages": {
            "": {"name": "gitpaas-node-sample", "version": "1.0.0", "devDependencies": {"ms": "2.1.3"}},
            "node_modules/ms": {"version": "2.1.3", "dev": True, "license": "MIT", "integrity": (
                "sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA==")},
        }}),
    "server.js": (
        'const fs = require("fs");\n'
        'const body = fs.readFileSync(__dirname + "/BODY", "utf8").trim();\n'
        'require("http").createServer((req, res) => res.end(`${body}: ms is '
        '${fs.existsSync(__dirname + "/node_modules/ms") ? "installed" : "pruned"}\\n`))'
        '.listen(Number(process.env.PORT));\n'),
}


def test_node_modules_pruned_of_its_dev_dependencies_stays_in_place_on_the_next_push(home):
    """A warm build keeps the slug's node_modules, already pruned, when no build script needs the
    devDependencies back: neither npm ci nor a second prune runs."""
    home.create_app("pruned")
    first = home.push("pruned", "node-npm", files={**DEV_ONLY, "BODY": "v1"})
    assert deployed(first), first.stderr
    assert "-----> Installing dependencies with npm ci" in first.stderr
    assert "-----> Pruning devDependencies" in first.stderr
    assert home.get("pruned").text == "v1: ms is pruned\n"

    second = home.push("pruned", "node-npm", files={**DEV_ONLY, "BODY": "v2"})
    assert deployed(second), second.stderr
    assert ("-----> Reusing node_modules of the previous build (package.json and package-lock.json unchanged; "
            "devDependencies pruned already)") in second.stderr
    assert "npm ci" not in second.stderr and "Pruning devDependencies" not in second.stderr
    assert home.get("pruned").text == "v2: ms is pruned\n"


def test_static_site_is_served_by_a_web_server_from_the_stack(home):
    home.create_app("site")
    push = home.push("site", "static-site")
    assert deployed(push), push.stderr
    assert "-----> Static site app detected" in push.stderr
    assert home.get("site").text == (Path(__file__).resolve().parents[1] / "apps/static-site/index.html").read_text()
    assert home.release("site", 1)["process_types"] == {"web": "python3 -m http.server $PORT --directory /app"}


def test_procfile_app_runs_a_committed_shell_script(home):
    home.create_app("script")
    home.gitpaas("config:set", "GREETING=Bonjour", "-a", "script")
    push = home.push("script", "procfile-script")
    assert deployed(push), push.stderr
    assert "-----> Procfile app detected" in push.stderr
    assert home.get("script").text == "hello from a shell script on web.1 (Bonjour)\n"


def allow_buildpacks_from(home, *places) -> None:
    """The operator's GITPAAS_BUILDPACK_ALLOW for this home's commands and pushes."""
    home.env["GITPAAS_BUILDPACK_ALLOW"] = ",".join(str(place) for place in places)


def test_buildpacks_file_runs_two_buildpacks_in_order_with_the_config_vars_in_env_dir(home):
    allow_buildpacks_from(home, BUILDPACKS)
    home.create_app("order")
    home.gitpaas("config:set", "GREETING=Bonjour, le monde", "-a", "order")
    greeting = BUILDPACKS / "greeting"
    # The app has nothing static to serve until the greeting buildpack has run: static's bin/detect
    # matches only because it runs second.
    push = home.push("order", "undetectable", files={".buildpacks": f"# ours first\n{greeting}\nstatic\n"})
    assert deployed(push), push.stderr
    out = push.stderr
    steps = [f"Buildpacks from .buildpacks: {greeting}, static", f"-----> Buildpack 1 of 2: {greeting}",
             "-----> Greeting app detected", "-----> Greeting buildpack: writing public/index.html",
             "-----> Buildpack 2 of 2: static", "-----> Static site app detected", "Serving public/"]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), out
    assert home.get("order").text == "Bonjour, le monde from the greeting buildpack\n"


def test_buildpack_from_a_git_url_is_cloned_at_build_time(home, tmp_path):
    bare = tmp_path / "greeting-buildpack.git"
    work = tmp_path / "greeting-work"
    subprocess.run(["cp", "-a", str(BUILDPACKS / "greeting"), str(work)], check=True)
    git = ["git", "-c", "user.name=tests", "-c", "user.email=tests@gitpaas.invalid"]
    for args in (["init", "-q", "-b", "stable"], ["add", "-A"], ["commit", "-qm", "greeting buildpack"]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True, capture_output=True)
    url = f"file://{bare}#stable"

    allow_buildpacks_from(home, BUILDPACKS, tmp_path)
    home.create_app("cloned")
    # A folder first, then the same buildpack from git: the second sees what the first exported.
    push = home.push("cloned", "undetectable", files={".buildpacks": f"{BUILDPACKS / 'greeting'}\n{url}\n"})
    assert deployed(push), push.stderr
    assert f"Cloning {url}" in push.stderr
    assert f"-----> Buildpack 2 of 2: {url}" in push.stderr
    first, second = push.stderr.split(f"Buildpack 2 of 2: {url}")
    assert "exported GREETING_COMPILED=nothing" in first and "exported GREETING_COMPILED=yes" in second
    assert home.get("cloned").text == "hello from the greeting buildpack\n"


def test_buildpack_url_config_var_wins_over_the_buildpacks_file(home):
    home.create_app("chosen")
    home.gitpaas("config:set", "BUILDPACK_URL=heroku/static", "-a", "chosen")
    push = home.push("chosen", "static-site", files={".buildpacks": "nodejs\n"})
    assert deployed(push), push.stderr
    assert "Buildpacks from BUILDPACK_URL: heroku/static" in push.stderr
    assert "<h1>hello from a static site</h1>" in home.get("chosen").text


BAD_PUSHES = {
    "detect matches nothing": (
        {".buildpacks": "nodejs\n"},
        "build failed: buildpack nodejs does not apply to this app (its bin/detect found nothing to build)"),
    "compile fails (pip)": (
        {"requirements.txt": f"{NO_SUCH_PACKAGE}==1.0\n"},
        f"No matching distribution found for {NO_SUCH_PACKAGE}==1.0",
        "build failed: buildpack python: pip could not install requirements.txt"),
    "compile fails (npm)": (
        {"package.json": f'{{"name": "x", "version": "1.0.0", "dependencies": {{"{NO_SUCH_PACKAGE}": "1.0.0"}}}}'},
        f"404 Not Found - GET https://registry.npmjs.org/{NO_SUCH_PACKAGE}",
        "build failed: buildpack nodejs: npm install failed"),
    "git URL cannot be cloned": (
        {".buildpacks": "file:///nonexistent/buildpack.git\n"},
        ("build failed: buildpack file:///nonexistent/buildpack.git: git clone failed: "
         "fatal: '/nonexistent/buildpack.git' does not appear to be a git repository")),
    "folder without bin/compile": (
        {".buildpacks": f"{BUILDPACKS / 'no-compile'}\n"},
        f"build failed: buildpack {BUILDPACKS / 'no-compile'}: bin/compile is missing"),
    "unknown buildpack name": (
        {".buildpacks": "cobol\n"},
        "build failed: buildpack cobol: not a bundled buildpack (python, nodejs, static, procfile)"),
    "two python package managers": (
        {"requirements.txt": "", "uv.lock": "version = 1\n"},
        "build failed: buildpack python: several package manager files: requirements.txt uv.lock; keep the one "
        "you use and delete the others"),
    "Pipfile without its lock file": (
        {"Pipfile": "[packages]\n"},
        "build failed: buildpack python: a Pipfile without its Pipfile.lock: run `pipenv lock` and commit "
        "Pipfile.lock"),
    "python no stack has": (
        {"requirements.txt": "", ".python-version": "3.12\n"},
        "Python 3.12 (.python-version) is on no stack of this server: it has 3.11 (bookworm); 3.13 (trixie); "
        "3.14, 3.13, 3.15 (forky)"),
}


@pytest.mark.parametrize("case", list(BAD_PUSHES))
def test_bad_buildpack_input_rejects_the_push_and_keeps_the_running_release(home, docker_client, case):
    files, *messages = BAD_PUSHES[case]
    allow_buildpacks_from(home, BUILDPACKS, "/nonexistent")  # so those cases can say what is wrong
    home.create_app("bad")
    assert deployed(home.push("bad", "procfile-script"))
    good = home.head("bad")
    push = home.push("bad", "procfile-script", files=files)
    assert push.returncode != 0
    for message in messages:
        assert message in push.stderr, push.stderr
    assert "Full build log:" in push.stderr and "bad keeps running v1, untouched" in push.stderr
    assert home.remote_ref("bad") == good
    assert [r["version"] for r in home.json("releases", "-a", "bad")] == [1]
    assert home.get("bad").text == SCRIPT_BODY
    assert not build_containers(docker_client, home), "no stray build container"
    tags = {tag for image in home.docker_objects(docker_client, "bad")["images"] for tag in image.tags}
    assert {tag.rsplit(":", 1)[1] for tag in tags} == {"v1"}, "no image of the failed build"


NOT_ALLOWED = ("not allowed: use a bundled buildpack, a public https:// git URL, "
               "or ask the operator to allow it (GITPAAS_BUILDPACK_ALLOW)")


def test_a_pusher_cannot_make_the_server_fetch_another_apps_repository_or_a_server_folder(home, docker_client):
    """Another tenant's repository by file://, a server folder, a loopback URL: refused with the same
    words whether the path exists or not, and nothing is cloned — not even an allowed entry before it."""
    home.create_app("victim")
    assert deployed(home.push("victim", "procfile-script"))
    victim_repo = home.path / "apps" / "victim" / "repo.git"
    home.create_app("thief")
    assert deployed(home.push("thief", "procfile-script"))
    good = home.head("thief")
    allow_buildpacks_from(home, BUILDPACKS)
    shown = set()
    for entry in (f"file://{victim_repo}", f"file://{victim_repo}#main", str(victim_repo), "/etc",
                  "/nonexistent/buildpack", "file:///nonexistent/buildpack.git", "http://127.0.0.1:1/bp.git",
                  "https://169.254.169.254/bp.git"):
        push = home.push("thief", "procfile-script", files={".buildpacks": f"{BUILDPACKS / 'greeting'}\n{entry}\n"})
        assert push.returncode != 0
        assert f"build failed: buildpack {entry}: {NOT_ALLOWED}" in push.stderr, push.stderr
        assert "Cloning" not in push.stderr and "no such folder" not in push.stderr
        assert "thief keeps running v1, untouched" in push.stderr
        shown.add(next(line for line in push.stderr.splitlines() if NOT_ALLOWED in line).replace(entry, "ENTRY"))
    assert len(shown) == 1, shown  # one message, whatever exists
    assert home.remote_ref("thief") == good
    assert [r["version"] for r in home.json("releases", "-a", "thief")] == [1]
    assert home.get("thief").text == SCRIPT_BODY

    home.gitpaas("config:set", f"BUILDPACK_URL=file://{victim_repo}", "-a", "thief")  # makes v2, same slug
    by_config = home.push("thief", "procfile-script", files={"BODY": "x"})
    assert by_config.returncode != 0 and f"buildpack file://{victim_repo}: {NOT_ALLOWED}" in by_config.stderr
    assert "Cloning" not in by_config.stderr
    assert home.remote_ref("thief") == good
    assert not build_containers(docker_client, home)


def test_an_app_no_buildpack_detects_is_refused(home, docker_client):
    home.create_app("nothing")
    push = home.push("nothing", "undetectable")
    assert push.returncode != 0
    assert ("cannot tell how to build this app: it has no Dockerfile, and no bundled buildpack detects it"
            in push.stderr)
    assert home.json("releases", "-a", "nothing") == []
    assert not build_containers(docker_client, home)


def test_clearing_the_cache_waits_for_a_running_build(home, docker_client):
    home.create_app("busy")
    pushing = home.start_push("busy", "python-pypi")
    deadline = time.monotonic() + 120
    while not build_containers(docker_client, home):
        assert pushing.poll() is None, "the push ended before its build container was seen"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cleared = home.gitpaas("builds:cache:clear", "-a", "busy")
    _, push_output = pushing.communicate(timeout=600)
    assert pushing.returncode == 0, push_output
    assert "Waiting for another release of busy to finish" in cleared.stderr
    assert not list((home.path / "apps" / "busy" / "cache").iterdir()), "cleared after the build, not during it"
    assert home.get("busy").text.startswith("hello from python v1")
