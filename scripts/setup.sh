#!/usr/bin/env bash
# Prepare this machine for gitpaas: the Python env, a Docker engine, nginx, debootstrap, git, Chromium and
# the stack image. Used by `make demo`, `make test` and the Vagrantfile. Safe to run again: a
# second run changes nothing and takes seconds.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerd_log=/var/log/gitpaas-dockerd.log

step() { printf '==> %s\n' "$*"; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

apt_updated=no
apt_install() {
    is_root || fail "missing $*: run this script as root, or: sudo apt-get install $*"
    if [ ! -f /etc/debian_version ] || ! have apt-get; then
        fail "missing $*: install it (this script only knows Debian's apt)"
    fi
    if [ "$apt_updated" = no ]; then
        step "apt-get update"
        apt-get update -qq
        apt_updated=yes
    fi
    step "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

setup_python() {
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        apt_install python3-venv
    fi
    if [ ! -x "$repo_root/.venv/bin/python" ]; then
        step "creating $repo_root/.venv"
        python3 -m venv "$repo_root/.venv"
    fi
    local stamp
    stamp="$repo_root/.venv/.installed-$(sha256sum "$repo_root/pyproject.toml" | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        step "pip install -e '.[test]'"
        "$repo_root/.venv/bin/pip" install -q -e "${repo_root}[test]"
        rm -f "$repo_root"/.venv/.installed-*
        touch "$stamp"
    fi
    step "Python env ready ($repo_root/.venv)"
}

# shellcheck source-path=SCRIPTDIR source=pidfile.sh
source "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh" # live_pid

# An engine that was killed (not stopped) leaves its pidfiles and its containerd's behind, and
# where /run outlives the processes (no reboot, no tmpfs) their pids come round again to other
# processes. dockerd only asks whether the pid is alive: it then refuses to start ("pid file
# found"), or waits on a containerd that is not there until "timeout waiting for containerd to
# start". A pidfile whose process is not the engine's is removed, as a reboot would.
clear_stale_pidfiles() { # FILE:COMM[:ARG]...
    local file comm arg
    for file in "$@"; do
        IFS=: read -r file comm arg <<<"$file"
        if [ -f "$file" ] && ! live_pid "$file" "$comm" "$arg" >/dev/null; then
            step "removing $file (a $comm that is no longer running left it)"
            rm -f "$file"
        fi
    done
}

setup_docker() {
    if docker info >/dev/null 2>&1; then
        step "Docker engine is running"
        return
    fi
    local launched=""
    is_root || fail "no Docker engine answers: start one (e.g. sudo systemctl start docker), add yourself to the docker group, or run this script as root"
    if ! have dockerd; then
        apt_install docker.io
        docker info >/dev/null 2>&1 && { step "Docker engine is running"; return; }
    fi
    if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
        :
    else
        # (the engine's own containerd is the one started with the engine's exec root: not the
        # swarm rig's, nor containerd.service)
        clear_stale_pidfiles /var/run/docker.pid:dockerd \
            /var/run/docker/containerd/containerd.pid:containerd:/var/run/docker/containerd/containerd.toml
        step "starting dockerd (log: $dockerd_log)"
        PATH="$PATH:/usr/sbin:/sbin" nohup setsid dockerd >>"$dockerd_log" 2>&1 </dev/null &
        launched=$!
    fi
    local waited=0
    until docker info >/dev/null 2>&1; do
        if [ -n "$launched" ] && ! kill -0 "$launched" 2>/dev/null; then
            if live_pid /var/run/docker.pid dockerd >/dev/null; then
                launched="" # another one is starting (systemd's, another setup): wait for it
            else
                tail -n 5 "$dockerd_log" >&2 2>/dev/null || true
                fail "dockerd exited while starting (see $dockerd_log)"
            fi
        fi
        if [ "$waited" -ge 60 ]; then
            tail -n 30 "$dockerd_log" >&2 2>/dev/null || true
            fail "the Docker engine did not come up within 60 s (see $dockerd_log)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    step "Docker engine is running"
}

# Install packages without letting Debian's maintainer scripts start (or enable) their services:
# gitpaas starts its own nginx (not the system one on port 80) and its own sshd (`gitpaas
# sshd:config`), each with its own configuration. policy-rc.d exit 101 = "action forbidden".
apt_install_stopped() {
    local policy=/usr/sbin/policy-rc.d own_policy=no status=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=yes
    fi
    apt_install "$@" || status=$?
    if [ "$own_policy" = yes ]; then
        rm -f "$policy"
    fi
    return "$status"
}

install_nginx() {
    apt_install_stopped nginx-light || apt_install_stopped nginx || fail "could not install nginx"
    if have systemctl; then
        systemctl disable nginx.service >/dev/null 2>&1 || true
    fi
}

install_openssh() {
    apt_install_stopped openssh-server openssh-client || fail "could not install openssh-server"
    if have systemctl; then
        systemctl disable ssh.service >/dev/null 2>&1 || true
    fi
}

setup_tools() {
    have nginx || install_nginx
    # the router's balancer: backends change without a reload (gitpaas/router/nginx.py)
    # (without it the router works too, reloading nginx for every switch)
    [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || apt_install_stopped libnginx-mod-http-lua \
        || step "warning: nginx's Lua module (libnginx-mod-http-lua) could not be installed: every router switch will reload nginx"
    have debootstrap || apt_install debootstrap
    have git || apt_install git
    { have sshd && have ssh-keygen && have ssh; } || install_openssh
    # the dashboard's browser tests: Debian's Chromium, driven by Playwright (no browser download)
    have chromium || apt_install chromium
    # the swarm scheduler's registry and its TLS, and the rig its tests run on (scripts/swarm-rig.sh)
    have docker-registry || apt_install_stopped docker-registry || fail "could not install docker-registry"
    { have openssl && have iptables && have ip; } || apt_install openssl iptables iproute2
    # the tests check this very script with it (tests/unit/test_setup_script.py)
    have shellcheck || apt_install shellcheck
    step "nginx (with Lua), debootstrap, git, OpenSSH, Chromium, docker-registry and shellcheck are installed"
}

setup_stack() {
    step "stack images: the default (trixie), and bookworm, which the add-on images are built on"
    "$repo_root/.venv/bin/gitpaas" stack:build trixie
    "$repo_root/.venv/bin/gitpaas" stack:build bookworm
}

# Where systemd runs the machine (a VM, a server; not a container): the API server as a service, and
# gitpaas-boot, which brings the apps back after a reboot (without systemd: run `gitpaas boot` at startup).
setup_service() {
    if [ ! -d /run/systemd/system ] || ! is_root; then
        return 0
    fi
    local name unit changed=no
    for name in gitpaas-boot gitpaas; do
        unit="/etc/systemd/system/$name.service"
        sed -e "s|@GITPAAS@|$repo_root/.venv/bin/gitpaas|" -e "s|@REPO@|$repo_root|" \
            "$repo_root/packaging/$name.service" > "$unit.new"
        if ! cmp -s "$unit.new" "$unit"; then
            mv "$unit.new" "$unit"
            changed=yes
        else
            rm -f "$unit.new"
        fi
    done
    if [ "$changed" = yes ]; then
        systemctl daemon-reload
        systemctl enable gitpaas-boot.service >/dev/null 2>&1
        systemctl enable --now gitpaas.service >/dev/null 2>&1 || systemctl restart gitpaas.service
        step "gitpaas-boot.service and gitpaas.service installed and enabled"
    fi
}

main() {
    setup_python
    setup_docker
    setup_tools
    setup_stack
    setup_service
    step "ready"
}

# Sourcing the script (to test one step) defines the steps without running them, whatever $0 is.
if ! (return 0 2>/dev/null); then
    main "$@"
fi
