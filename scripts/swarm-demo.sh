#!/usr/bin/env bash
# `make swarm-demo`: a 3-node Docker Swarm on this machine (scripts/swarm-rig.sh), a gitpaas home of
# its own on the swarm scheduler, and the example deployed across the nodes with a real git push
# (scripts/demo.sh, in that home); then three web processes, and where each one runs.
# `make swarm-down` takes the rig down again.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gitpaas="$repo_root/.venv/bin/gitpaas"
export GITPAAS_HOME="${GITPAAS_SWARM_DEMO_HOME:-$repo_root/.demo/swarm-home}"
export GITPAAS_HTTP_PORT="${GITPAAS_SWARM_DEMO_PORT:-8090}"
export GITPAAS_DEMO_WORKDIR="$repo_root/.demo/swarm-example"

printf '==> the swarm rig: 3 Docker engines, each in its own network namespace, and a registry\n'
rig_env="$(bash "$repo_root/scripts/swarm-rig.sh" up 3)"
manager="$(printf '%s\n' "$rig_env" | sed -n 's/^GITPAAS_SWARM_MANAGER=//p')"
registry="$(printf '%s\n' "$rig_env" | sed -n 's/^GITPAAS_SWARM_REGISTRY=//p')"
"$gitpaas" scheduler:set swarm --manager "$manager" --registry "$registry"

bash "$repo_root/scripts/demo.sh"

printf '\n==> three web processes, placed by Swarm\n'
"$gitpaas" ps:scale web=3 -a example
"$gitpaas" ps -a example
printf '\n'
"$gitpaas" nodes
printf '\nGITPAAS_HOME=%s for more commands; make swarm-down stops the rig.\n' "$GITPAAS_HOME"
