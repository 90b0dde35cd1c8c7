"""The build cache folder and `gitpaas builds:cache:clear`."""

from __future__ import annotations

import os

from click.testing import CliRunner

from gitpaas.build import cache
from gitpaas.cli.main import cli


def test_clear_empties_the_folder_and_says_how_much(tmp_path):
    folder = tmp_path / "cache"
    (folder / "pip" / "http").mkdir(parents=True)
    (folder / "pip" / "http" / "blob").write_bytes(b"x" * 1500)
    (folder / "python").mkdir()
    (folder / "python" / "key").write_text("abc\n")
    (folder / "link").symlink_to("/etc/passwd")
    locked = folder / "npm" / "_cacache" / "content"
    locked.mkdir(parents=True)
    (locked / "entry").write_bytes(b"y" * 10)
    locked.chmod(0o555)  # npm leaves read-only folders behind
    assert cache.size(folder) == 1500 + 4 + 10 + len("/etc/passwd")
    assert cache.clear(folder) == 1500 + 4 + 10 + len("/etc/passwd")
    assert folder.is_dir() and not list(folder.iterdir())
    assert os.path.exists("/etc/passwd")
    assert cache.clear(folder) == 0
    assert cache.clear(tmp_path / "never-built") == 0


def test_prepare_creates_the_folder_for_the_build_user(tmp_path):
    folder = tmp_path / "apps" / "shop" / "cache"
    user = cache.build_user()
    cache.prepare(folder, user)
    assert folder.is_dir()
    if os.geteuid() == 0:
        assert user == cache.NOBODY and (folder.stat().st_uid, folder.stat().st_gid) == cache.NOBODY
    else:
        assert user == (os.geteuid(), os.getegid())


def test_sizes_read_like_a_person_would_write_them():
    assert [cache.describe_size(n) for n in (0, 999, 1000, 25_400_000, 3_200_000_000)] == \
        ["0 bytes", "999 bytes", "1.0 kB", "25.4 MB", "3.2 GB"]


def test_builds_cache_clear_command(tmp_path):
    runner = CliRunner()
    env = {"GITPAAS_HOME": str(tmp_path / "home"), "GITPAAS_HTTP_PORT": "8080"}
    assert runner.invoke(cli, ["apps:create", "shop"], env=env).exit_code == 0
    folder = tmp_path / "home" / "apps" / "shop" / "cache" / "pip"
    folder.mkdir(parents=True)
    (folder / "wheel").write_bytes(b"z" * 2_500_000)
    result = runner.invoke(cli, ["builds:cache:clear", "-a", "shop"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Clearing the build cache of shop... done, freed 2.5 MB\n"
    assert not list(folder.parent.iterdir())
    missing = runner.invoke(cli, ["builds:cache:clear", "-a", "nope"], env=env)
    assert missing.exit_code == 3 and "app 'nope' not found" in missing.stderr
