"""The add-on service images, built on this machine from Debian's packages, like the stack: no
image is pulled from a registry.

    gitpaas/addon-postgresql:15   PostgreSQL 15 (bookworm's), initialised on first start
    gitpaas/addon-redis:7         Redis 7 (bookworm's), append-only persistence

Each is the stack plus the packages, built with ``docker build`` (apt reaches the same Debian
mirror the stack was made from), and labelled ``gitpaas.addon-image=<fingerprint>`` of its recipe
and of the stack it was built on: an image that is current is reused, any other is rebuilt. One
image serves every home on the machine. Each runs as the service's own user, never root; its data
lives on a named volume the scheduler mounts.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import docker
from docker.errors import ImageNotFound
from docker.models.images import Image

from gitpaas.build.base import text_context
from gitpaas.dockerutil import ENGINE_ERRORS, describe, engine_call
from gitpaas.errors import EnvironmentProblem
from gitpaas.lines import iter_lines

LABEL = "gitpaas.addon-image"
#: the stack the service images are built on, whatever the apps' stacks: its PostgreSQL 15 and Redis 7
#: are what the add-ons' volumes hold data for, and another suite's major version could not read them
ADDON_STACK = "bookworm"
RECIPE_VERSION = 2

_POSTGRES_ENTRYPOINT = """#!/bin/sh
# gitpaas's PostgreSQL: initialise the data folder on the first start (the volume is empty), then run.
# The app's role owns its database and nothing else: it is no superuser (none can log in over TCP).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \\
        > /dev/null
    printf "listen_addresses = '*'\\n" >> "$PGDATA/postgresql.conf"
    printf 'host all all 0.0.0.0/0 scram-sha-256\\nhost all all ::/0 scram-sha-256\\n' >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
    psql -X -q -v ON_ERROR_STOP=1 -U postgres -d postgres <<'SQL'
\\getenv user POSTGRES_USER
\\getenv password POSTGRES_PASSWORD
\\getenv db POSTGRES_DB
CREATE ROLE :"user" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
SQL
    pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    echo "gitpaas: database $POSTGRES_DB created"
fi
exec postgres -D "$PGDATA"
"""

_REDIS_ENTRYPOINT = """#!/bin/sh
# gitpaas's Redis: write its configuration (with the add-on's password) on the first start, then run.
set -eu
if [ ! -f /data/redis.conf ]; then
    umask 077
    # quoted, as redis.conf reads it: a password may hold spaces, quotes or backslashes
    quoted=$(printf '%s' "$REDIS_PASSWORD" | sed 's/[\\\\"]/\\\\&/g')
    printf 'bind * -::*\\nprotected-mode no\\nport 6379\\ndir /data\\nappendonly yes\\nrequirepass "%s"\\n' \\
        "$quoted" > /data/redis.conf
fi
exec redis-server /data/redis.conf
"""


@dataclass(frozen=True)
class Recipe:
    service: str
    image: str
    packages: tuple[str, ...]
    #: where the data lives in the container (the volume's mount point), owned by ``user``
    data_dir: str
    user: str
    entrypoint: str
    environment: tuple[tuple[str, str], ...] = ()
    before_install: str = "true"
    #: other folders the service writes (its socket's), made its user's
    run_dirs: tuple[str, ...] = ()

    def dockerfile(self, stack: str) -> str:
        env = "".join(f"ENV {key}={value}\n" for key, value in self.environment)
        return (
            f"FROM {stack}\n"
            f"RUN {self.before_install} && apt-get update"
            f" && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {' '.join(self.packages)}"
            " && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
            f"RUN mkdir -p {self.data_dir} {' '.join(self.run_dirs)}"
            f" && chown -R {self.user}:{self.user} {self.data_dir} {' '.join(self.run_dirs)} && chmod 700 {self.data_dir}\n"
            "COPY entrypoint /usr/local/bin/gitpaas-addon\n"
            f"{env}"
            f"USER {self.user}\n"
            'CMD ["/usr/local/bin/gitpaas-addon"]\n'
        )


RECIPES = {
    "postgresql": Recipe(
        "postgresql", "gitpaas/addon-postgresql:15", ("postgresql-15", "postgresql-client-15"),
        "/var/lib/postgresql/data", "postgres", _POSTGRES_ENTRYPOINT,
        environment=(("PGDATA", "/var/lib/postgresql/data"), ("PATH", "/usr/lib/postgresql/15/bin:$PATH")),
        # Debian's package would make and start a "main" cluster: the entrypoint makes the add-on's own.
        before_install="mkdir -p /etc/postgresql-common/createcluster.d"
                       " && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/gitpaas.conf",
        run_dirs=("/var/run/postgresql",)),
    "redis": Recipe("redis", "gitpaas/addon-redis:7", ("redis-server", "redis-tools"), "/data", "redis",
                    _REDIS_ENTRYPOINT),
}


def fingerprint(recipe: Recipe, stack_id: str) -> str:
    text = f"{RECIPE_VERSION}\n{stack_id}\n{recipe.dockerfile('STACK')}\n{recipe.entrypoint}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def is_current(client: docker.DockerClient, image: Image, service: str, stack: str) -> bool:
    """Whether ``image`` (an add-on container's) is what the recipe would build on this stack now."""
    try:
        stack_id = client.images.get(stack).id
    except ImageNotFound:
        return True  # no stack to build on: what runs is as current as it gets
    return (image.labels or {}).get(LABEL) == fingerprint(RECIPES[service], stack_id)


@engine_call("building an add-on image")
def ensure_image(client: docker.DockerClient, service: str, progress: Callable[[str], None],
                 stack: str) -> str:
    """The service's image, built first unless a current one is there; returns its name."""
    recipe = RECIPES[service]
    try:
        stack_id = client.images.get(stack).id
    except ImageNotFound:
        raise EnvironmentProblem(f"the stack image {stack} is missing: run `gitpaas stack:build {ADDON_STACK}`") from None
    wanted = fingerprint(recipe, stack_id)
    try:
        if (client.images.get(recipe.image).labels or {}).get(LABEL) == wanted:
            return recipe.image
    except ImageNotFound:
        pass  # never built on this machine: built now
    started = time.monotonic()
    progress(f"Building the {service} image from Debian's packages (once per machine)")
    context = text_context({"Dockerfile": (recipe.dockerfile(stack), 0o644), "entrypoint": (recipe.entrypoint, 0o755)})
    tail: list[str] = []

    def chunks():
        for chunk in client.api.build(fileobj=context, custom_context=True, tag=recipe.image, rm=True, forcerm=True,
                                      pull=False, decode=True, labels={LABEL: wanted}):
            if "error" in chunk:
                raise EnvironmentProblem(f"building the {service} image failed: {chunk['error'].strip()}\n"
                                         + "\n".join(tail[-10:]))
            yield chunk.get("stream", "")
    try:
        for line in iter_lines(chunks()):
            tail.append(line)
    except ENGINE_ERRORS as exc:
        raise EnvironmentProblem(f"building the {service} image failed: {describe(exc)}") from exc
    progress(f"Built {recipe.image} in {time.monotonic() - started:.0f} s")
    return recipe.image
