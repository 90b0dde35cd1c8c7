#!/usr/bin/env bash
# Deploy examples/example to gitpaas with a real `git push`, then print its URL and releases.
# Run by `make demo` after scripts/setup.sh. Safe to run again, from any checkout: each run deploys
# a new release on top of the last one.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
gitpaas="$repo_root/.venv/bin/gitpaas"
work="${GITPAAS_DEMO_WORKDIR:-$repo_root/.demo/example}"
app=example

"$gitpaas" apps:info -a "$app" >/dev/null 2>&1 || "$gitpaas" apps:create "$app"
git_url="$("$gitpaas" apps:info -a "$app" --json | "$repo_root/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["git_url"])')"
web_url="$("$gitpaas" apps:info -a "$app" --json | "$repo_root/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["web_url"])')"

# A work tree of the example, as a user would have: copy, commit, push.
mkdir -p "$work"
cd "$work"
[ -d .git ] || git init -q -b main
# Commit on top of what the app runs now, whichever checkout pushed it, so the push is a
# fast-forward: fetch the app's main and point this work repo's main at it (files untouched).
if git ls-remote --exit-code "$git_url" refs/heads/main >/dev/null; then
    git fetch -q "$git_url" main
    git reset -q FETCH_HEAD
fi
cp -a "$repo_root/examples/example/." "$work/"
git add -A
git -c user.name="gitpaas demo" -c user.email="demo@gitpaas.invalid" \
    commit -q --allow-empty -m "Deploy the example app ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
printf '==> git push %s main\n' "$git_url"
git push "$git_url" main

printf '\n==> %s answers:\n' "$web_url"
"$repo_root/.venv/bin/python" - "$web_url" <<'PY'
import sys, urllib.parse, urllib.request
url = urllib.parse.urlsplit(sys.argv[1])
# *.localhost names resolve to this machine in browsers and curl, not always in Python: ask 127.0.0.1.
request = urllib.request.Request(f"http://127.0.0.1:{url.port or 80}/", headers={"Host": url.netloc})
with urllib.request.urlopen(request, timeout=10) as response:
    print(response.read().decode().strip())
PY
printf '\n'
"$gitpaas" releases -a "$app" -n 5
printf '\nOpen %s (or: curl %s)\n' "$web_url" "$web_url"
