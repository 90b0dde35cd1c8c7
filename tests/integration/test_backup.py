"""Nothing is lost: a home backed up, then brought back into a new home — the way it would be on a
fresh machine — where no slug image exists, so each current release is rebuilt from its commit."""

from __future__ import annotations

import stat
import tarfile

import requests

from harness import ApiServer


def test_backup_then_restore_into_a_new_home_brings_every_app_back(home, other_home, tmp_path):
    home.create_app("shop")
    home.gitpaas("config:set", "GREETING=hello", "-a", "shop")
    assert home.push("shop", "web", files={"BODY": "first"}).returncode == 0
    assert home.push("shop", "web", files={"BODY": "second"}).returncode == 0
    home.create_app("site")
    assert home.push("site", "static-site").returncode == 0
    home.create_app("empty")
    home.gitpaas("webhooks:add", "https://hooks.example.com/x", "-a", "shop", "--secret", "s3cret")
    home.gitpaas("addons:create", "postgresql", "-a", "shop", "--name", "shop-db")
    home.gitpaas("pg:psql", "-a", "shop", "-c", "CREATE TABLE orders (item text); INSERT INTO orders VALUES ('tea')")
    api = ApiServer(home)
    api.stop()

    archive = tmp_path / "home.tar.gz"
    made = home.gitpaas("backup", str(archive))
    assert "Backed up 3 apps" in made.stdout
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert stat.S_IMODE(members["home/apps/shop/config.json"].mode) == 0o600
    assert "home/apps/shop/repo.git/HEAD" in members and "home/accounts/tokens.json" in members
    assert not any("/cache/" in name or name.startswith("home/router/logs") for name in members)

    restored = other_home.gitpaas("restore", str(archive))
    assert "shop: v3 (its slug rebuilt from commit" in restored.stdout, restored.stdout
    assert "shop-db loaded from h001" in restored.stdout
    assert "tea" in other_home.gitpaas("pg:psql", "-a", "shop", "-c", "SELECT item FROM orders").stdout
    assert "site: v1 (its slug rebuilt from commit" in restored.stdout
    assert "empty: restored (no release yet)" in restored.stdout
    assert other_home.get("shop").text == "second from web.1\n"
    assert "html" in other_home.get("site").text.lower()
    assert other_home.gitpaas("config:get", "GREETING", "-a", "shop").stdout == "hello\n"
    assert [r["version"] for r in other_home.json("releases", "-a", "shop")] == [3, 2, 1]
    assert "DATABASE_URL" in other_home.get("shop", "/env").text
    assert other_home.release("shop", 1)["eligible_for_rollback"] is False, "its slug was not rebuilt"
    assert [h["url"] for h in other_home.json("webhooks", "-a", "shop")] == ["https://hooks.example.com/x"]
    assert stat.S_IMODE(other_home.path.stat().st_mode) == 0o700

    # the accounts came along: the old token works against the restored home
    restored_api = ApiServer(other_home, email="second@example.com")
    try:
        answer = requests.get(f"{restored_api.url}/account", headers={"Authorization": f"Bearer {api.token}"},
                              timeout=10)
        assert answer.status_code == 200 and answer.json()["email"] == api.email
    finally:
        restored_api.stop()

    # and a git push from the developer's clone to the restored app deploys v4 there, its data still there
    assert home.push("shop", "web", files={"BODY": "third"}, url=str(other_home.path / "apps/shop/repo.git"),
                     env=other_home.env).returncode == 0
    assert "tea" in other_home.gitpaas("pg:psql", "-a", "shop", "-c", "SELECT item FROM orders").stdout
    assert other_home.get("shop").text == "third from web.1\n"


def test_restore_refuses_a_home_that_is_not_empty_and_a_file_that_is_not_a_backup(home, tmp_path):
    home.create_app("busy")
    archive = tmp_path / "busy.tar.gz"
    home.gitpaas("backup", str(archive))
    refused = home.gitpaas("restore", str(archive), check=False)
    assert refused.returncode == 2 and "restore into a new, empty home" in refused.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    other = home.gitpaas("restore", str(junk), check=False, env={"GITPAAS_HOME": str(tmp_path / "fresh")})
    assert other.returncode == 2 and "junk.tar.gz is not a gitpaas backup" in other.stderr
    assert "Traceback" not in other.stderr and str(tmp_path) not in other.stderr
