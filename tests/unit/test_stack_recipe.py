"""The stack recipe as pure values: fingerprint, status, and the command lines it runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import docker.errors
import pytest

from gitpaas import labels
from gitpaas.build import stack
from gitpaas.build.stack import stack_fingerprint, stack_status
from gitpaas.errors import EnvironmentProblem
from gitpaas.runtimes import Provided
from gitpaas.settings import Settings
from gitpaas.stacks import STACKS


class FakeImage:
    def __init__(self, image_labels: dict[str, str] | None) -> None:
        self.labels = image_labels


class FakeImages:
    def __init__(self, images: dict[str, FakeImage]) -> None:
        self.images = images

    def get(self, name: str) -> FakeImage:
        try:
            return self.images[name]
        except KeyError:
            raise docker.errors.ImageNotFound(f"No such image: {name}") from None


class FakeClient:
    """Just enough of ``docker.DockerClient`` for ``stack_status``: ``images.get``."""

    def __init__(self, images: dict[str, FakeImage]) -> None:
        self.images = FakeImages(images)


BOOKWORM, TRIXIE, FORKY = (STACKS[name] for name in ("bookworm", "trixie", "forky"))


def test_fingerprint_is_stable_and_short():
    assert stack_fingerprint(TRIXIE) == stack_fingerprint(TRIXIE)
    assert len(stack_fingerprint(TRIXIE)) == 12
    assert len({stack_fingerprint(each) for each in STACKS.values()}) == len(STACKS)


def test_fingerprint_ignores_package_order():
    shuffled = dataclasses.replace(TRIXIE, extra=("git", "make"))
    assert stack_fingerprint(shuffled) == stack_fingerprint(dataclasses.replace(TRIXIE, extra=("make", "git")))


@pytest.mark.parametrize(
    "changed",
    [
        {"extra": ("git",)},
        {"pythons": ("3.13", "3.14")},
        {"name": "sid"},
        {"security_updates": False},
    ],
)
def test_fingerprint_changes_with_the_recipe(changed):
    assert stack_fingerprint(dataclasses.replace(TRIXIE, **changed)) != stack_fingerprint(TRIXIE)
    assert stack_fingerprint(TRIXIE, stack.RECIPE_VERSION + 1) != stack_fingerprint(TRIXIE)


def test_every_stack_has_the_runtimes_and_no_init():
    for each in STACKS.values():
        for package in ("ca-certificates", "python3", "python3-venv", "python3-pip", "nodejs", "npm"):
            assert package in each.packages
        assert "tini" not in each.packages
    assert {"python3.13", "python3.13-venv", "python3.15", "python3.15-venv"} <= set(FORKY.packages)


def test_status_missing_current_outdated():
    client = FakeClient(
        {
            "gitpaas/stack:trixie": FakeImage({labels.STACK: stack_fingerprint(TRIXIE)}),
            "gitpaas/stack:bookworm": FakeImage({labels.STACK: stack_fingerprint(TRIXIE)}),
            "old/stack:trixie": FakeImage({labels.STACK: "0123456789ab"}),
            "plain:latest": FakeImage(None),
        }
    )
    assert stack_status(client, "gitpaas/stack:trixie", TRIXIE) == "current"
    assert stack_status(client, "gitpaas/stack:bookworm", BOOKWORM) == "outdated"  # another stack's recipe
    assert stack_status(client, "old/stack:trixie", TRIXIE) == "outdated"
    assert stack_status(client, "plain:latest", TRIXIE) == "outdated"
    assert stack_status(client, "nothing/here:trixie", TRIXIE) == "missing"


def test_provided_runtimes_are_exact_where_built_and_the_catalogue_elsewhere():
    recorded = json.dumps({"python": {"3.13": "3.13.5"}, "node": "20.19.2"})
    client = FakeClient({"gitpaas/stack:trixie": FakeImage({stack.RUNTIMES_LABEL: recorded}),
                         "gitpaas/stack:bookworm": FakeImage({})})
    provided = stack.provided_runtimes(client, Settings(home=Path("/nonexistent")))
    assert provided["trixie"] == Provided({"3.13": "3.13.5"}, "20.19.2")
    assert provided["bookworm"] == Provided({"3.11": ""}, "18.20")
    assert provided["forky"] == Provided({"3.14": "", "3.13": "", "3.15": ""}, "24.21")


def test_debootstrap_is_minbase_without_include():
    command = stack.debootstrap_command(Path("/var/tmp/x/rootfs"), BOOKWORM, "http://mirror.example/debian")
    assert command[:5] == [
        "debootstrap", "--variant=minbase", "bookworm", "/var/tmp/x/rootfs", "http://mirror.example/debian",
    ]
    assert command[5].startswith("/usr/share/debootstrap/scripts/")
    assert not any(word.startswith("--include") for word in command)


def test_apt_commands_run_inside_the_rootfs():
    rootfs = Path("/var/tmp/x/rootfs")
    assert stack.apt_update_command(rootfs) == ["chroot", "/var/tmp/x/rootfs", "apt-get", "update"]
    install = stack.apt_install_command(rootfs, FORKY.packages)
    assert install[:6] == ["chroot", "/var/tmp/x/rootfs", "apt-get", "install", "-y", "--no-install-recommends"]
    assert tuple(install[6:]) == FORKY.packages
    assert stack.apt_clean_command(rootfs) == ["chroot", "/var/tmp/x/rootfs", "apt-get", "clean"]


def test_import_changes_label_env_and_workdir():
    changes = stack.import_changes("abcdef123456", {"python": {"3.13": "3.13.5"}, "node": "20.19.2"})
    assert f"LABEL {labels.STACK}=abcdef123456" in changes
    label = next(change for change in changes if change.startswith(f"LABEL {stack.RUNTIMES_LABEL}="))
    assert json.loads(json.loads(label.split("=", 1)[1])) == {"python": {"3.13": "3.13.5"}, "node": "20.19.2"}
    assert "WORKDIR /app" in changes
    assert 'CMD ["/bin/bash"]' in changes
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    for variable in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"):
        assert f"ENV {variable}={bundle}" in changes
    assert "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in changes


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://ftp.example.org/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://secure.example/debian bookworm main
deb http://one.example/debian bookworm main contrib
deb-src http://src.example/debian bookworm main
"""


def test_mirror_from_deb822_sources():
    assert stack.mirror_from_sources([DEB822], "bookworm") == "http://ftp.example.org/debian"
    assert stack.mirror_from_sources([DEB822], "bookworm-security") == "http://security.example.org/debian-security"


def test_mirror_from_one_line_sources_takes_plain_http_only():
    assert stack.mirror_from_sources([ONE_LINE], "bookworm") == "http://one.example/debian"
    assert stack.mirror_from_sources([ONE_LINE], "bookworm-security") is None
    assert stack.mirror_from_sources([], "bookworm") is None


def test_disabled_deb822_stanza_is_skipped():
    disabled = "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n"
    assert stack.mirror_from_sources([disabled, DEB822], "bookworm") == "http://ftp.example.org/debian"


def test_host_mirrors_reads_files_and_falls_back(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    sources = [tmp_path / "sources.list", tmp_path / "sources.list.d"]
    assert stack.host_mirrors(BOOKWORM, sources) == (
        "http://ftp.example.org/debian",
        "http://security.example.org/debian-security",
    )
    # a bookworm host's mirror serves trixie too: every Debian mirror has every suite
    assert stack.host_mirrors(TRIXIE, sources) == (
        "http://ftp.example.org/debian",
        "http://security.example.org/debian-security",
    )
    assert stack.host_mirrors(TRIXIE, [tmp_path / "nothing"]) == (stack.DEFAULT_MIRROR, None)


def test_another_distributions_mirror_is_not_taken_for_debian(tmp_path):
    (tmp_path / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu noble main\n")
    assert stack.host_mirrors(TRIXIE, [tmp_path / "sources.list"]) == (stack.DEFAULT_MIRROR, None)


def test_sources_list_inside_the_rootfs():
    assert stack.sources_list("http://m/debian", TRIXIE, "http://s/debian-security") == (
        "deb http://m/debian trixie main\n"
        "deb http://m/debian trixie-updates main\n"
        "deb http://s/debian-security trixie-security main\n"
    )
    assert "security" not in stack.sources_list("http://m/debian", TRIXIE)
    # testing has neither -updates nor -security
    assert stack.sources_list("http://m/debian", FORKY, "http://s/debian-security") == "deb http://m/debian forky main\n"


def test_current_image_is_reused_without_touching_the_host(tmp_path):
    client = FakeClient({"gitpaas/stack:trixie": FakeImage({labels.STACK: stack_fingerprint(TRIXIE)})})
    lines: list[str] = []
    assert stack.build_stack(client, TRIXIE, "gitpaas/stack:trixie", lines.append, workdir=tmp_path) is False
    assert "reusing" in lines[-1]
    assert [path.name for path in tmp_path.iterdir()] in ([], ["gitpaas-stack-trixie.lock"])


def test_failing_command_raises_with_the_tail_of_its_output():
    lines: list[str] = []
    run = stack._Runner(lines.append, verbose=False)
    with pytest.raises(EnvironmentProblem) as raised:
        run(["sh", "-c", "seq 1 100; echo 'E: Unable to locate package npm' >&2; exit 100"], "apt-get install")
    message = str(raised.value).splitlines()
    assert message[0] == "apt-get install failed (exit status 100)"
    assert len(message) == 1 + stack.LOG_TAIL_LINES
    assert message[-1].strip() == "E: Unable to locate package npm"
    assert lines == []


def test_verbose_streams_the_output():
    lines: list[str] = []
    stack._Runner(lines.append, verbose=True)(["sh", "-c", "echo one; echo two"], "echo")
    assert [line.strip() for line in lines] == ["one", "two"]


def test_a_missing_stack_is_refused_to_a_user_who_cannot_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(stack.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem) as refused:
        stack.ensure_stack(FakeClient({}), Settings(home=tmp_path), FORKY, print)
    assert str(refused.value) == ("the forky stack is not built on this server: its operator builds it with "
                                  "`gitpaas stack:build forky`")


def test_a_stack_build_that_fails_during_a_push_tells_no_server_path(tmp_path, monkeypatch):
    monkeypatch.setattr(stack.os, "geteuid", lambda: 0)

    def fails(*args, **kwargs):
        raise EnvironmentProblem("mount -t proc proc /var/tmp/gitpaas-stack-x1/rootfs/proc failed: no")
    monkeypatch.setattr(stack, "build_stack", fails)
    lines: list[str] = []
    with pytest.raises(EnvironmentProblem) as refused:
        stack.ensure_stack(FakeClient({}), Settings(home=tmp_path), FORKY, lines.append)
    assert str(refused.value) == ("building the forky stack failed (the server's logs/stack-forky.log says why); "
                                  "its operator can run `gitpaas stack:build forky`")
    assert "/var/tmp" in (tmp_path / "logs" / "stack-forky.log").read_text()
    assert lines == ["-----> The forky stack is not built on this server yet: building it first (once, a few minutes)"]


def test_an_outdated_stack_is_used_as_it_is_until_stack_build(tmp_path):
    client = FakeClient({"gitpaas/stack:trixie": FakeImage({labels.STACK: "0123456789ab"})})
    assert stack.ensure_stack(client, Settings(home=tmp_path), TRIXIE, print) == "gitpaas/stack:trixie"
