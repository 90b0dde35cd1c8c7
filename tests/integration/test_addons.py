"""Add-ons for real: PostgreSQL 15 and Redis 7 built from Debian's packages, beside apps pushed
with git, with the release semantics Heroku documents. The app is tests/apps/python-postgres, a
tutorial-shaped Python app whose release phase runs Alembic migrations against DATABASE_URL and
whose page lists the rows it reads."""

from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess

import requests

from gitpaas import labels
from harness import restart_engine, wait_for

#: migration 0002 of the sample app: a column with a default, so the code before it still runs
MIGRATION_0002 = '''"""notes get an author"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.add_column("notes", sa.Column("author", sa.Text, nullable=False, server_default="someone"))


def downgrade():
    op.drop_column("notes", "author")
'''


def psql(home, app: str, sql: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    return home.gitpaas("pg:psql", *extra, "-a", app, "-c", sql, check=check)


def add_note(home, app: str, text: str) -> None:
    answer = requests.post(f"http://127.0.0.1:{home.port}/", data=text.encode(), headers={"Host": f"{app}.localhost"},
                           timeout=10)
    assert answer.status_code == 201, answer.text


def test_a_migrating_app_keeps_its_data_through_everything(home, docker_client):
    home.create_app("notes")
    manifest = json.dumps({"addons": ["heroku-postgresql"]})
    pushed = home.push("notes", "python-postgres", files={"app.json": manifest})
    assert pushed.returncode == 0, pushed.stderr
    # app.json's add-on was provisioned, and accepted connections, before the release phase migrated it
    assert pushed.stderr.index("app.json asks for heroku-postgresql") < pushed.stderr.index("Running upgrade  -> 0001")
    assert home.get("notes").text == "schema 0001 (id, body)\n- first note, written by migration 0001\n"
    (addon,) = home.json("addons", "-a", "notes")
    assert addon["plan"] == "heroku-postgresql:local" and addon["config_vars"] == ["DATABASE_URL"]
    assert home.release("notes", 1)["addon_plan_names"] == ["heroku-postgresql:local"]
    shown = home.gitpaas("config", "-a", "notes").stdout
    assert re.search(rf"DATABASE_URL: postgres://\S+@{addon['name']}:5432/\S+  \(add-on {addon['name']}\)", shown)
    refused = home.gitpaas("config:set", "DATABASE_URL=postgres://elsewhere", "-a", "notes", check=False)
    assert refused.returncode != 0 and f"belongs to the add-on {addon['name']}" in refused.stderr

    # the container: labelled, on the app's network only, never published, its data on a volume
    container = docker_client.containers.get(f"gp-{home.settings.home_id}-notes.addon.{addon['name']}")
    assert container.labels[labels.APP] == "notes" and container.labels[labels.HOME] == str(home.path)
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [home.settings.app_network("notes")]
    assert not container.attrs["HostConfig"]["PortBindings"] and not container.ports
    assert [m["Type"] for m in container.attrs["Mounts"]] == ["volume"]

    add_note(home, "notes", "kept across everything")
    page = "- first note, written by migration 0001\n- kept across everything\n"

    # a redeploy with a migration: the release phase runs it, the rows stay
    pushed = home.push("notes", "python-postgres", files={"app.json": manifest,
                                                          "migrations/versions/0002_author.py": MIGRATION_0002})
    assert pushed.returncode == 0 and "Running upgrade 0001 -> 0002" in pushed.stderr
    assert home.get("notes").text == "schema 0002 (id, body, author)\n" + page

    # a restart, then a rollback to the code from before the migration: data and schema stay
    home.gitpaas("ps:restart", "-a", "notes")
    assert home.get("notes").text.endswith(page)
    rolled = home.gitpaas("rollback", "v1", "-a", "notes")
    assert "newer than this code knows" in rolled.stdout
    assert home.get("notes").text == "schema 0002 (id, body, author)\n" + page

    # the engine restarts (a reboot): the add-on comes back first, the app after, with the data
    restart_engine()
    booted = home.gitpaas("boot")
    assert "Traceback" not in booted.stderr
    wait_for(lambda: home.get("notes").text.endswith(page), "the app to serve its rows after the engine restart")

    # new credentials: a release without the release phase, and the app keeps working with them
    before = home.gitpaas("config:get", "DATABASE_URL", "-a", "notes").stdout
    versions = len(home.json("releases", "-a", "notes"))
    rotated = home.gitpaas("addons:rotate-credentials", addon["name"], "-a", "notes")
    latest = home.json("releases", "-a", "notes")[0]
    assert latest["version"] == versions + 1 and latest["description"] == "Update DATABASE_URL by heroku-postgresql"
    assert "no release phase" in rotated.stdout and "Running upgrade" not in rotated.stdout
    output = home.gitpaas("releases:output", f"v{latest['version']}", "-a", "notes")
    assert output.stdout == "" and "ran no release command" in output.stderr
    assert home.gitpaas("config:get", "DATABASE_URL", "-a", "notes").stdout != before
    add_note(home, "notes", "after the rotation")
    assert home.get("notes").text.endswith(page + "- after the rotation\n")
    old = subprocess.run(["docker", "exec", container.name, "psql", "-h", "127.0.0.1", before.strip(), "-c", "SELECT 1"],
                         capture_output=True, text=True)
    assert old.returncode != 0 and "password authentication failed" in old.stderr

    # backup, drop the table, restore: the rows are back
    captured = home.gitpaas("pg:backups:capture", "-a", "notes")
    backup_id = re.search(r"done, (b\d+)", captured.stdout).group(1)
    psql(home, "notes", "DROP TABLE notes")
    assert home.get("notes").status_code >= 500
    refused = home.gitpaas("pg:backups:restore", backup_id, "-a", "notes", check=False)
    assert refused.returncode == 2 and "--confirm notes" in refused.stderr
    home.gitpaas("pg:backups:restore", backup_id, "-a", "notes", "--confirm", "notes")
    assert home.get("notes").text.endswith(page + "- after the rotation\n")
    download = home.path.parent / "notes.dump"
    home.gitpaas("pg:backups:download", backup_id, "-a", "notes", "-o", str(download))
    assert download.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format

    # apps:destroy asks by name, keeps a final backup, and leaves no container or volume behind
    home.gitpaas("apps:destroy", "notes", "--confirm", "notes")
    assert home.docker_objects(docker_client, "notes")["volumes"] == []
    (final,) = [b for b in home.json("pg:backups") if b["kind"] == "final"]
    assert final["app"] == "notes" and final["addon"] == addon["name"] and final["status"] == "completed"
    assert f"{addon['name']} (destroyed)" in home.gitpaas("pg:backups").stdout


def test_a_restore_is_all_or_nothing(home):
    home.create_app("ledger")
    home.gitpaas("addons:create", "postgresql", "-a", "ledger")
    psql(home, "ledger", "CREATE TABLE entries (amount int); INSERT INTO entries VALUES (1), (2)")
    backup_id = re.search(r"done, (b\d+)", home.gitpaas("pg:backups:capture", "-a", "ledger").stdout).group(1)
    # a table the dump does not know depends on a table it replaces: pg_restore --clean must fail half-way
    psql(home, "ledger", "INSERT INTO entries VALUES (3); CREATE VIEW big AS SELECT * FROM entries WHERE amount > 1")
    failed = home.gitpaas("pg:backups:restore", backup_id, "-a", "ledger", "--confirm", "ledger", check=False)
    assert failed.returncode != 0 and "nothing was changed" in failed.stderr and "Traceback" not in failed.stderr
    assert psql(home, "ledger", "SELECT sum(amount) AS total FROM entries").stdout.split()[:3] == ["total", "-------", "6"]


def test_the_release_phase_never_starts_before_the_add_on_accepts_connections(home, docker_client):
    """The add-on's container is stopped (a crash, an operator): the next release starts it and waits
    until PostgreSQL accepts connections before the migration runs — then two releases at once
    (a config change and a retry) run their migrations one after the other, never together."""
    home.create_app("queue")
    home.gitpaas("addons:create", "postgresql", "-a", "queue", "--name", "queue-db")
    assert home.push("queue", "python-postgres").returncode == 0
    docker_client.containers.get(f"gp-{home.settings.home_id}-queue.addon.queue-db").stop(timeout=5)
    changed = home.gitpaas("config:set", "MIGRATION_PAUSE=3", "-a", "queue")
    assert "done, v2" in changed.stdout and "Traceback" not in changed.stderr
    assert "Started the add-on queue-db (DATABASE)" in changed.stdout  # and waited for, before the release phase
    assert home.release("queue", 2)["status"] == "succeeded"

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(home.gitpaas, *command, "-a", "queue")
                for command in (("config:set", "SECOND=1"), ("releases:retry",))]
        for run in runs:
            assert run.result().returncode == 0
    counted = psql(home, "queue", "SELECT count(*) AS runs, count(*) FILTER (WHERE EXISTS (SELECT FROM migration_runs o "
                                  "WHERE o.id <> m.id AND o.started < m.ended AND m.started < o.ended)) AS overlapping "
                                  "FROM migration_runs m").stdout
    # v2's migration, then the two that were started together: one after the other
    assert re.search(r"^\s*3 \|\s+0$", counted, re.M), counted


def test_redis_and_two_apps_that_cannot_reach_each_others_add_ons(home, docker_client):
    for app in ("alpha", "beta"):
        home.create_app(app)
        home.gitpaas("addons:create", "heroku-postgresql", "-a", app, "--name", f"{app}-db")
        assert home.push(app, "web").returncode == 0
    home.gitpaas("addons:create", "heroku-redis", "-a", "alpha", "--name", "alpha-cache")
    assert home.get("alpha").status_code == 200

    # Redis: REDIS_URL in the processes' environment, redis:cli, new credentials keep the data
    env = home.get("alpha", "/env").text
    url = re.search(r"^REDIS_URL=(redis://:\S+@alpha-cache:6379)$", env, re.M).group(1)
    assert home.gitpaas("redis:cli", "-a", "alpha", "-c", "SET greeting hello").stdout.strip() == "OK"
    rotated = home.gitpaas("addons:rotate-credentials", "alpha-cache", "-a", "alpha")
    assert "Rotating the credentials of alpha-cache... done" in rotated.stdout
    assert home.json("releases", "-a", "alpha")[0]["description"] == "Update REDIS_URL by heroku-redis"
    assert home.gitpaas("redis:cli", "-a", "alpha", "-c", "GET greeting").stdout.strip() == "hello"
    assert home.gitpaas("config:get", "REDIS_URL", "-a", "alpha").stdout.strip() != url
    assert f"REDIS_URL={url}" not in home.get("alpha", "/env").text

    # alpha's processes reach their own database, and neither the name nor the address of beta's
    web = next(c for c in docker_client.containers.list(filters={"label": f"{labels.APP}=alpha"})
               if c.labels.get(labels.ROLE) == "process")
    beta_db = docker_client.containers.get(f"gp-{home.settings.home_id}-beta.addon.beta-db")
    beta_ip = next(iter(beta_db.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    probe = ("import socket, sys\n"
             "try:\n    socket.create_connection((sys.argv[1], 5432), timeout=3).close(); print('open')\n"
             "except OSError as exc:\n    print('closed', exc)\n")
    reach = {target: web.exec_run(["python3", "-c", probe, target]).output.decode().strip()
             for target in ("alpha-db", "beta-db", beta_ip)}
    assert reach["alpha-db"] == "open" and reach["beta-db"].startswith("closed")
    assert reach[beta_ip].startswith("closed"), reach

    # destroying one add-on asks for the app's name, keeps a final backup and makes a release without it
    refused = home.gitpaas("addons:destroy", "alpha-db", "-a", "alpha", check=False)
    assert refused.returncode == 2 and "--confirm alpha" in refused.stderr
    destroyed = home.gitpaas("addons:destroy", "alpha-db", "-a", "alpha", "--confirm", "alpha")
    assert "final backup" in destroyed.stdout
    assert home.json("releases", "-a", "alpha")[0]["description"] == "Detach DATABASE (alpha-db)"
    assert "DATABASE_URL=" not in home.get("alpha", "/env").text
    (kept,) = home.docker_objects(docker_client, "alpha")["volumes"]
    assert kept.name.startswith(f"gp-{home.settings.home_id}-alpha-cache-") and kept.name.endswith("-data")
