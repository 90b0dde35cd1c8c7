#!/usr/bin/env bash
# A real multi-node Docker Swarm on this one machine, for testing gitpaas's Swarm scheduler.
#
#   scripts/swarm-rig.sh up [N]        N nodes (default 3, or the running rig's count); idempotent
#   scripts/swarm-rig.sh down          stop and remove everything the rig made; safe when nothing is up
#   scripts/swarm-rig.sh status        the nodes (node ls on the manager) and the registry; 0 if healthy
#   scripts/swarm-rig.sh env           the GITPAAS_SWARM_* lines (also printed by `up` on stdout)
#   scripts/swarm-rig.sh stop-node I   kill node I like a dead machine (link down, every process SIGKILLed)
#   scripts/swarm-rig.sh start-node I  boot node I again from its data root; it rejoins by itself
#
# Each node is a dockerd of its own in a network namespace (gpsw-nI, 10.77.0.1I on the bridge gpsw0,
# host side 10.77.0.1) and a UTS namespace (hostname gpsw-nI), with its own data root, exec root,
# containerd, containerd namespace and parent cgroup. Node 1 is the only manager; the others are
# workers. The host's own dockerd is never touched. A registry (Debian's docker-registry) listens
# with TLS on 10.77.0.1:5000; its CA goes to /etc/docker/certs.d/10.77.0.1:5000/ca.crt, which every
# engine on the machine reads, so the host's engine pushes and the nodes pull without daemon flags.
#
# The machine has no IPVS: the ingress routing mesh and service VIPs do not work. Use overlay
# networks with --endpoint-mode dnsrr and host-mode published ports.
#
# Environment: GITPAAS_SWARM_RIG (state dir: sockets, pidfiles, logs, certs; default
# /run/gitpaas-swarm), GITPAAS_SWARM_RIG_DATA (node data roots and registry storage; default
# /var/lib/gitpaas-swarm).
# Exit status: 0 ok, 1 failure (one line naming the log), 2 usage, 3 this machine cannot run a swarm.
set -euo pipefail

STATE=${GITPAAS_SWARM_RIG:-/run/gitpaas-swarm}
DATA=${GITPAAS_SWARM_RIG_DATA:-/var/lib/gitpaas-swarm}
STATE=${STATE%/}
DATA=${DATA%/}
# Everything under these is the rig's to unmount and delete: refuse anything that is not plainly its own.
for dir in "$STATE" "$DATA"; do
    case "$dir" in
        /*gitpaas-swarm*|/*gpsw*) ;;
        *) echo "swarm rig: refusing $dir: the rig's directories must be absolute and named for it (…gitpaas-swarm…)" >&2
           exit 2 ;;
    esac
done
BRIDGE=gpsw0
NET=10.77.0
HOST_IP=$NET.1
REGISTRY=$HOST_IP:5000
CERTS_D=/etc/docker/certs.d/$REGISTRY
NETNS_DIR=/run/netns
DEFAULT_NODES=3
MAX_NODES=20
STOP_TIMEOUT=20

export LC_ALL=C
export PATH=$PATH:/usr/sbin:/sbin

say() { printf 'swarm rig: %s\n' "$*" >&2; }
die() { printf 'swarm rig: %s\n' "$*" >&2; exit 1; }
cannot() { printf 'swarm rig: this machine cannot run a swarm: %s\n' "$*" >&2; exit 3; }
usage() {
    printf 'usage: %s up [N] | down | status | env | stop-node I | start-node I\n' "$0" >&2
    exit 2
}

ns() { printf 'gpsw-n%s' "$1"; }              # network namespace and hostname of node I
veth() { printf 'gpsw-v%s' "$1"; }            # host end of node I's veth
ip_of() { printf '%s.%s' "$NET" "$((10 + $1))"; }
sock() { printf '%s/n%s.sock' "$STATE" "$1"; }
host_of() { printf 'unix://%s' "$(sock "$1")"; }
xroot() { printf '%s/x%s' "$STATE" "$1"; }    # exec root (short: unix socket paths live under it)
droot() { printf '%s/n%s' "$DATA" "$1"; }
pidfile() { printf '%s/n%s.pid' "$STATE" "$1"; }
logfile() { printf '%s/n%s.log' "$STATE" "$1"; }
dk() { local i=$1; shift; docker -H "$(host_of "$i")" "$@"; }
oneline() { tr '\n' ' ' | sed 's/[[:space:]]\+/ /g; s/ $//' | cut -c1-300; }

# The rig's node count: from the state dir, or nothing when the rig was never brought up.
recorded_nodes() { if [ -f "$STATE/nodes" ]; then cat "$STATE/nodes"; fi; }

have() { command -v "$1" >/dev/null 2>&1; }

# shellcheck source-path=SCRIPTDIR source=pidfile.sh
source "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh" # live_pid
engine_pid() { live_pid "$(pidfile "$1")" dockerd; }
registry_pid() { live_pid "$STATE/registry.pid" docker-registry; }

engine_answers() { curl -fsS -m 3 --unix-socket "$(sock "$1")" http://rig/_ping >/dev/null 2>&1; }
registry_code() {
    curl -s -m 3 -o /dev/null -w '%{http_code}' --cacert "$STATE/registry/ca.crt" "https://$REGISTRY/v2/" 2>/dev/null || true
}

# The iptables rules the rig adds to the host (all name the bridge, so none can be anyone else's).
FORWARD_RULE=(FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT)
INPUT_RULE=(INPUT -i "$BRIDGE" -j ACCEPT)
ipt() { iptables -w 10 "$@"; }

# ---------------------------------------------------------------------------------------------
# Processes, mounts and cgroups of a node

# Every process of node I: its dockerd (pidfile and arguments), its containerd and shims (they name
# its exec root), everything in its network namespace (docker-proxy, host-network containers), its
# containers (in its parent cgroup, and the children of its shims).
node_pids() {
    local i=$1 x sock ino pid ppid comm args s
    x=$(xroot "$i")
    sock=$(sock "$i")
    local -A mine=() parent=()
    local -a shims=()
    if pid=$(engine_pid "$i"); then mine[$pid]=1; fi
    if ino=$(stat -L -c %i "$NETNS_DIR/$(ns "$i")" 2>/dev/null); then
        while read -r pid; do
            [ -n "$pid" ] && mine[$pid]=1
        done < <(find /proc/[0-9]*/ns/net -maxdepth 0 -lname "net:\[$ino\]" -printf '%h\n' 2>/dev/null | cut -d/ -f3)
    fi
    while read -r pid; do
        [ -n "$pid" ] && mine[$pid]=1
    done < <(cat /sys/fs/cgroup/*/"$(ns "$i")"/cgroup.procs /sys/fs/cgroup/*/"$(ns "$i")"/*/cgroup.procs 2>/dev/null || true)
    while read -r pid ppid comm args; do
        parent[$pid]=$ppid
        case $comm in
            dockerd | containerd | containerd-shim* | docker-proxy | runc) ;;
            *) continue ;;
        esac
        case " $args " in
            *" $x "* | *" $x/"* | *"=$x "* | *"=$x/"* | *"unix://$sock "*)
                mine[$pid]=1
                [[ $comm == containerd-shim* ]] && shims+=("$pid")
                ;;
        esac
    done < <(ps -eo pid=,ppid=,comm=,args= 2>/dev/null)
    if [ "${#shims[@]}" -gt 0 ]; then
        for pid in "${!parent[@]}"; do
            for s in "${shims[@]}"; do
                [ "${parent[$pid]}" = "$s" ] && mine[$pid]=1
            done
        done
    fi
    unset "mine[$$]"
    [ "${#mine[@]}" -gt 0 ] && printf '%s\n' "${!mine[@]}"
    return 0
}

# The sockets of node I's live shims: containerd names them /run/containerd/s/sha256(address/ns/id),
# and a SIGKILLed shim leaves its socket behind.
shim_sockets() { # I
    local x pid args a ns id
    x=$(xroot "$1")
    while read -r pid args; do
        [[ $args == *containerd-shim* && $args == *" -address $x/"* ]] || continue
        a=${args##* -address }
        ns=${args##* -namespace }
        id=${args##* -id }
        printf '/run/containerd/s/%s\n' \
            "$(printf '%s' "${a%% *}/${ns%% *}/${id%% *}" | sha256sum | cut -d' ' -f1)"
    done < <(ps -eo pid=,args= 2>/dev/null)
}

kill_node_processes() { # I: SIGKILL every process of node I and wait until they are gone
    local i=$1 pids pid sockets="" _
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        sockets+=$(shim_sockets "$i")$'\n'
        pids=$(node_pids "$i")
        [ -n "$pids" ] || break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.3
    done
    while read -r pid; do
        if [ -n "$pid" ]; then rm -f "$pid"; fi
    done <<<"$sockets"
    pids=$(node_pids "$i")
    [ -z "$pids" ] || say "warning: processes of $(ns "$i") still alive after SIGKILL: $(echo "$pids" | oneline)"
}

umount_under() { # PATH...: lazily unmount everything mounted at or below these paths, deepest first
    local _ p m
    for p in "$@"; do
        case "$p" in /*gitpaas-swarm*|/*gpsw*) ;; *) echo "swarm rig: not unmounting under '$p'" >&2; return 1 ;; esac
    done
    for _ in 1 2 3 4 5; do
        m=$(for p in "$@"; do
            awk -v p="$p" '$2 == p || index($2, p "/") == 1 { print $2 }' /proc/mounts
        done | sort -u | awk '{ print length($0), $0 }' | sort -rn | cut -d' ' -f2-)
        [ -z "$m" ] && return 0
        while read -r p; do
            umount -l "$p" 2>/dev/null || true
        done <<<"$m"
    done
    return 0
}

remove_dirs() { # DIR...: remove them, unmounting what is left below them first
    umount_under "$@"
    rm -rf "$@" 2>/dev/null && return 0
    umount_under "$@"
    rm -rf "$@" 2>/dev/null ||
        die "could not remove $*: $(rm -rf "$@" 2>&1 | head -n 1) (mounted: $(grep -cF " $1" /proc/mounts) entries in /proc/mounts)"
}

remove_cgroups() { # I
    local d
    for d in /sys/fs/cgroup/*/"$(ns "$1")"; do
        if [ -d "$d" ]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
}

# What a machine has after a reboot: no process, no mount and no runtime state of the node left.
reap_node() { # I
    local i=$1
    kill_node_processes "$i"
    umount_under "$(xroot "$i")" "$(droot "$i")"
    remove_dirs "$(xroot "$i")"
    # A killed dockerd's pid can live on as a zombie for a moment: dockerd would refuse its pidfile.
    rm -f "$(pidfile "$i")"
    remove_cgroups "$i"
}

# ---------------------------------------------------------------------------------------------
# Checks and tools

preflight() {
    local err c probe=gpswp$$
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    for c in ip iptables nsenter unshare setsid flock curl ps find; do
        have "$c" || cannot "the $c command is missing"
    done
    have dockerd || cannot "no Docker engine (dockerd) is installed"
    have docker || cannot "no docker client is installed"
    err=$(unshare --net true 2>&1) || cannot "network namespaces (unshare --net: $(oneline <<<"$err"))"
    err=$(unshare --net ip link add "${probe}a" type veth peer name "${probe}b" 2>&1) ||
        cannot "veth interfaces (ip link add type veth: $(oneline <<<"$err"))"
    err=$(unshare --net ip link add "${probe}a" type bridge 2>&1) ||
        cannot "bridge interfaces (ip link add type bridge: $(oneline <<<"$err"))"
    if have modprobe; then modprobe -q vxlan 2>/dev/null || true; fi
    err=$(unshare --net ip link add "${probe}a" type vxlan id 4242 dstport 4789 2>&1) ||
        cannot "the vxlan kernel module, needed by overlay networks (ip link add type vxlan: $(oneline <<<"$err"))"
    err=$(ipt -S FORWARD 2>&1 >/dev/null) || cannot "a working iptables (iptables -S FORWARD: $(oneline <<<"$err"))"
    err=$(ipt -t nat -S 2>&1 >/dev/null) || cannot "the iptables nat table (iptables -t nat -S: $(oneline <<<"$err"))"
    [ -d /sys/fs/cgroup ] || cannot "no cgroup filesystem at /sys/fs/cgroup"
    [ "${#STATE}" -le 60 ] || die "state dir path too long for unix sockets (${#STATE} > 60 chars): $STATE"
}

apt_updated=no
apt_install() { # PACKAGE
    local log=$STATE/apt.log
    say "installing $1 (apt-get; log: $log)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >>"$log" 2>&1; then
        if [ "$apt_updated" = no ]; then
            apt_updated=yes
            apt-get update -q >>"$log" 2>&1 || true
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >>"$log" 2>&1 ||
            die "apt-get install $1 failed (log: $log)"
    fi
}

ensure_tools() {
    have openssl || apt_install openssl
    if ! have docker-registry; then
        apt_install docker-registry
        stop_debian_registry
    fi
}

# Debian's package may start its own registry on :5000 (all addresses): stop it, and keep it off.
stop_debian_registry() {
    local pid args
    if [ -d /run/systemd/system ] && have systemctl; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/docker-registry ]; then
        /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    while read -r pid args; do
        case " $args " in
            *docker-registry\ serve\ /etc/docker/registry/config.yml\ *) kill "$pid" 2>/dev/null || true ;;
        esac
    done < <(ps -eo pid=,args= 2>/dev/null)
}

# ---------------------------------------------------------------------------------------------
# Network

ensure_bridge() {
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge || die "could not create the bridge $BRIDGE"
    fi
    ip addr replace "$HOST_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # The host bridges with br_netfilter and a FORWARD policy of DROP: let the nodes talk.
    ipt -C "${FORWARD_RULE[@]}" 2>/dev/null || ipt -I "${FORWARD_RULE[@]}"
    # ... and reach the host (the registry) if INPUT is anything but plain ACCEPT.
    local input
    input=$(ipt -S INPUT)
    if grep -qvE '^-P INPUT ACCEPT$|^-A INPUT .*-j (ACCEPT|RETURN)$|^-N ' <<<"$input"; then
        ipt -C "${INPUT_RULE[@]}" 2>/dev/null || ipt -I "${INPUT_RULE[@]}"
    fi
}

ensure_node_net() { # I: namespace, veth (host end on the bridge, eth0 inside), address, route
    local i=$1 n v
    n=$(ns "$i")
    v=$(veth "$i")
    [ -e "$NETNS_DIR/$n" ] || ip netns add "$n" || die "ip netns add $n failed"
    if ! ip link show "$v" >/dev/null 2>&1; then
        ip -n "$n" link del eth0 2>/dev/null || true
        ip -n "$n" link del "gpsw-p$i" 2>/dev/null || true
        ip link add "$v" type veth peer name "gpsw-p$i" netns "$n" || die "could not create the veth $v for $n"
        ip -n "$n" link set "gpsw-p$i" name eth0
    fi
    ip link set "$v" master "$BRIDGE"
    ip link set "$v" up
    ip -n "$n" link set lo up
    ip -n "$n" addr replace "$(ip_of "$i")/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" route replace default via "$HOST_IP" dev eth0
}

# ---------------------------------------------------------------------------------------------
# Engines

declare -A LAUNCHED=()

start_engine() { # I: start node I's dockerd in its namespaces (in the background)
    local i=$1 log
    log=$(logfile "$i")
    reap_node "$i"
    mkdir -p "$(droot "$i")" "$(xroot "$i")"
    printf '\n==== %s starting dockerd\n' "$(date -u +%FT%TZ)" >>"$log"
    # nsenter, not `ip netns exec`: that one remounts /sys and dockerd then finds no devices cgroup.
    # shellcheck disable=SC2016 # $0 and $@ are the inner shell's
    setsid nohup nsenter --net="$NETNS_DIR/$(ns "$i")" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "$(ns "$i")" \
        dockerd --config-file "$STATE/daemon.json" \
        --data-root "$(droot "$i")" --exec-root "$(xroot "$i")" \
        -H "$(host_of "$i")" --pidfile "$(pidfile "$i")" \
        --containerd-namespace "$(ns "$i")" --containerd-plugins-namespace "$(ns "$i")-plugins" \
        --cgroup-parent "/$(ns "$i")" --iptables=true \
        </dev/null >>"$log" 2>&1 9<&- &
    LAUNCHED[$i]=$!
}

wait_engine() { # I
    local i=$1 deadline=$((SECONDS + 45)) log
    log=$(logfile "$i")
    until engine_answers "$i"; do
        if [ -n "${LAUNCHED[$i]:-}" ] && ! kill -0 "${LAUNCHED[$i]}" 2>/dev/null; then
            die "$(ns "$i")'s dockerd exited while starting: $(grep -E 'level=(fatal|error)' "$log" | tail -n 1 | oneline) (log: $log)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "$(ns "$i")'s dockerd did not answer within 45 s (log: $log)"
        sleep 0.3
    done
}

# ---------------------------------------------------------------------------------------------
# Registry

make_certs() {
    local d=$STATE/registry log=$STATE/registry.log
    [ -s "$d/ca.crt" ] && [ -s "$d/server.crt" ] && [ -s "$d/server.key" ] && return 0
    say "making the registry's CA and certificate for IP:$HOST_IP"
    mkdir -p "$d"
    {
        openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
            -keyout "$d/ca.key" -out "$d/ca.crt" -days 825 -subj "/CN=gitpaas swarm rig CA" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
            openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
                -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=$HOST_IP" &&
            printf '%s\n' "subjectAltName=IP:$HOST_IP" "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$d/server.ext" &&
            openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
                -out "$d/server.crt" -days 825 -extfile "$d/server.ext"
    } >>"$log" 2>&1 || die "openssl could not make the registry's certificates (log: $log)"
}

start_registry() {
    local d=$STATE/registry log=$STATE/registry.log pid args
    make_certs
    mkdir -p "$CERTS_D" "$DATA/registry"
    cmp -s "$d/ca.crt" "$CERTS_D/ca.crt" || cp "$d/ca.crt" "$CERTS_D/ca.crt"
    registry_pid >/dev/null && return 0
    # A registry of this rig whose pidfile was lost would hold the port.
    while read -r pid args; do
        case " $args " in *" $d/config.yml "*) kill "$pid" 2>/dev/null || true ;; esac
    done < <(ps -eo pid=,args= 2>/dev/null)
    cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: gitpaas-swarm-rig-registry
storage:
  filesystem:
    rootdirectory: $DATA/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY
  tls:
    certificate: $d/server.crt
    key: $d/server.key
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    say "starting the registry on https://$REGISTRY"
    printf '\n==== %s starting docker-registry\n' "$(date -u +%FT%TZ)" >>"$log"
    # shellcheck disable=SC2016 # $$, $0 and $1 are the inner shell's
    setsid nohup sh -c 'echo $$ >"$0" && exec docker-registry serve "$1"' "$STATE/registry.pid" "$d/config.yml" \
        </dev/null >>"$log" 2>&1 9<&- &
    LAUNCHED[registry]=$!
}

wait_registry() {
    local deadline=$((SECONDS + 20)) log=$STATE/registry.log
    until [ "$(registry_code)" = 200 ]; do
        if [ -n "${LAUNCHED[registry]:-}" ] && ! kill -0 "${LAUNCHED[registry]}" 2>/dev/null; then
            die "the registry exited while starting: $(tail -n 1 "$log" | oneline) (log: $log)"
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "the registry did not answer https://$REGISTRY/v2/ within 20 s (log: $log)"
        sleep 0.3
    done
}

# ---------------------------------------------------------------------------------------------
# Swarm

swarm_state() { dk "$1" info --format '{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}' 2>/dev/null || echo "unanswered -"; }

join_worker() { # I TOKEN
    local i=$1 log=$STATE/swarm.log
    dk "$i" swarm join --token "$2" --advertise-addr "$(ip_of "$i")" --listen-addr "$(ip_of "$i"):2377" \
        "$(ip_of 1):2377" 2>&1 | sed "s/^/$(ns "$i"): /" >>"$log"
}

converge_swarm() { # N
    local n=$1 i state id token log=$STATE/swarm.log members
    local -a joining=() rejoin=()
    read -r state id <<<"$(swarm_state 1)"
    if [ "$state" != active ]; then
        [ "$state" = inactive ] || dk 1 swarm leave --force >>"$log" 2>&1 || true
        say "swarm init on $(ns 1) ($(ip_of 1))"
        dk 1 swarm init --advertise-addr "$(ip_of 1)" --listen-addr "$(ip_of 1):2377" >>"$log" 2>&1 ||
            die "swarm init on $(ns 1) failed (log: $log)"
    fi
    token=$(dk 1 swarm join-token -q worker 2>>"$log") || die "no worker join token from $(ns 1) (log: $log)"
    members=" $(dk 1 node ls -q 2>/dev/null | tr '\n' ' ') "
    for ((i = 2; i <= n; i++)); do
        read -r state id <<<"$(swarm_state "$i")"
        if [ "$state" = active ] && [[ $members == *" $id "* ]]; then continue; fi
        [ "$state" = inactive ] || dk "$i" swarm leave --force >>"$log" 2>&1 || true
        say "joining $(ns "$i") ($(ip_of "$i")) as a worker"
        join_worker "$i" "$token" &
        joining+=("$!")
    done
    for id in "${joining[@]}"; do wait "$id" || true; done
    for ((i = 2; i <= n; i++)); do
        read -r state id <<<"$(swarm_state "$i")"
        case $state in active | pending) ;; *) rejoin+=("$i") ;; esac
    done
    for i in "${rejoin[@]}"; do
        say "$(ns "$i") is in swarm state '$(swarm_state "$i" | cut -d' ' -f1)': leaving and joining again"
        dk "$i" swarm leave --force >>"$log" 2>&1 || true
        join_worker "$i" "$token" || true
    done
}

# "ok" when the manager lists exactly nodes 1..N, all Ready; otherwise what is missing.
nodes_verdict() { # N
    local n=$1 i ls want bad=""
    ls=$(dk 1 node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null) || {
        echo "the manager does not answer node ls"
        return
    }
    for ((i = 1; i <= n; i++)); do
        want="$(ns "$i") Ready"
        grep -qxF "$want" <<<"$ls" || bad+=" $(ns "$i")"
    done
    [ -z "$bad" ] || {
        echo "not Ready:$bad"
        return
    }
    [ "$(grep -c . <<<"$ls")" -eq "$n" ] || {
        echo "extra nodes: $(grep -v ' Ready$' <<<"$ls" | oneline)"
        return
    }
    echo ok
}

wait_ready() { # N
    local n=$1 deadline=$((SECONDS + 60)) verdict i id ours
    while :; do
        # Entries left by nodes that joined again under a new ID: remove them.
        # (Only when every node told its ID: a node that does not answer keeps its entry.)
        ours=" "
        for ((i = 1; i <= n; i++)); do ours+="$(swarm_state "$i" | cut -d' ' -f2) "; done
        if [[ $ours != *" - "* ]]; then
            while read -r id _; do
                [ -n "$id" ] || continue
                [[ $ours == *" $id "* ]] || dk 1 node rm --force "$id" >>"$STATE/swarm.log" 2>&1 || true
            done < <(dk 1 node ls --format '{{.ID}} {{.Status}}' 2>/dev/null | grep -v ' Ready$' || true)
        fi
        verdict=$(nodes_verdict "$n")
        [ "$verdict" = ok ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || die "the swarm is not ready after 60 s: $verdict (logs: $STATE/swarm.log, $STATE/n*.log)"
        sleep 0.5
    done
}

# ---------------------------------------------------------------------------------------------
# Commands

print_env() { # N
    local n=$1 i nodes=""
    for ((i = 1; i <= n; i++)); do nodes+="${nodes:+,}$(host_of "$i")"; done
    printf 'GITPAAS_SWARM_MANAGER=%s\n' "$(host_of 1)"
    printf 'GITPAAS_SWARM_REGISTRY=%s\n' "$REGISTRY"
    printf 'GITPAAS_SWARM_NODES=%s\n' "$nodes"
}

healthy() { # N
    local n=$1 i
    ip link show "$BRIDGE" >/dev/null 2>&1 || return 1
    ipt -C "${FORWARD_RULE[@]}" 2>/dev/null || return 1
    for ((i = 1; i <= n; i++)); do engine_pid "$i" >/dev/null || return 1; done
    [ "$(nodes_verdict "$n")" = ok ] || return 1
    registry_pid >/dev/null || return 1
    [ "$(registry_code)" = 200 ]
}

# One rig per machine (the bridge and addresses are fixed): commands that change it take turns.
lock() {
    exec 9<"${BASH_SOURCE[0]}"
    flock -w 600 9 || die "could not lock ${BASH_SOURCE[0]} within 600 s"
}

cmd_up() {
    local n recorded i started=$SECONDS
    recorded=$(recorded_nodes)
    if [ $# -gt 0 ]; then
        if ! [[ $1 =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "$MAX_NODES" ]; then
            die "N must be 1 to $MAX_NODES, not '$1'"
        fi
        n=$1
        [ -z "$recorded" ] || [ "$recorded" = "$n" ] ||
            die "the rig is up with $recorded nodes, not $n: run '$0 down' first"
    else
        n=${recorded:-$DEFAULT_NODES}
    fi
    lock
    if [ -n "$recorded" ] && healthy "$n"; then
        say "already up with $n nodes"
        print_env "$n"
        return 0
    fi
    preflight
    mkdir -p "$STATE" "$DATA"
    chmod 700 "$STATE"
    echo "$n" >"$STATE/nodes"
    ensure_tools
    [ -f "$STATE/daemon.json" ] || echo '{}' >"$STATE/daemon.json"
    say "network: bridge $BRIDGE $HOST_IP/24, $n namespaces"
    ensure_bridge
    for ((i = 1; i <= n; i++)); do ensure_node_net "$i"; done
    for ((i = 1; i <= n; i++)); do
        if engine_pid "$i" >/dev/null; then continue; fi
        say "starting dockerd of $(ns "$i") ($(ip_of "$i"), log: $(logfile "$i"))"
        start_engine "$i"
    done
    start_registry
    for ((i = 1; i <= n; i++)); do wait_engine "$i"; done
    wait_registry
    converge_swarm "$n"
    say "waiting for $n nodes to be Ready"
    wait_ready "$n"
    say "up: $n nodes Ready, registry $REGISTRY ($((SECONDS - started)) s)"
    print_env "$n"
}

cmd_down() {
    local i pids=() pid deadline nodes=() n v
    [ "$(id -u)" -eq 0 ] || die "must run as root"
    lock
    # Every node there is a trace of: pidfiles, namespaces, veths, cgroups.
    local -A seen=()
    local f recorded
    for f in "$STATE"/n*.pid "$NETNS_DIR"/gpsw-n* /sys/class/net/gpsw-v* /sys/fs/cgroup/*/gpsw-n*; do
        [ -e "$f" ] || continue
        [[ $f =~ (/n|/gpsw-n|/gpsw-v)([0-9]+)(\.pid)?$ ]] && seen[${BASH_REMATCH[2]}]=1
    done
    recorded=$(recorded_nodes)
    for ((i = 1; i <= ${recorded:-0}; i++)); do seen[$i]=1; done
    nodes=("${!seen[@]}")
    if [ "${#nodes[@]}" -gt 0 ]; then say "stopping nodes: ${nodes[*]}"; fi
    for i in "${nodes[@]}"; do
        if pid=$(engine_pid "$i"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    deadline=$((SECONDS + STOP_TIMEOUT))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    done
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            say "dockerd $pid did not stop within $STOP_TIMEOUT s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for i in "${nodes[@]}"; do reap_node "$i"; done
    if pid=$(registry_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    while read -r pid n; do
        case " $n " in *" $STATE/registry/config.yml "*) kill -KILL "$pid" 2>/dev/null || true ;; esac
    done < <(ps -eo pid=,args= 2>/dev/null)
    umount_under "$STATE" "$DATA"
    for n in $(ip netns list 2>/dev/null | awk '$1 ~ /^gpsw-n[0-9]+$/ { print $1 }'); do
        ip netns del "$n" 2>/dev/null || true
    done
    for v in /sys/class/net/gpsw-v*; do
        if [ -e "$v" ]; then ip link del "${v##*/}" 2>/dev/null || true; fi
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    if have iptables; then
        while ipt -C "${FORWARD_RULE[@]}" 2>/dev/null; do ipt -D "${FORWARD_RULE[@]}"; done
        while ipt -C "${INPUT_RULE[@]}" 2>/dev/null; do ipt -D "${INPUT_RULE[@]}"; done
    fi
    rm -rf "$CERTS_D"
    rmdir /etc/docker/certs.d 2>/dev/null || true
    # Image layers are many small files, slow to delete on some disks: one rm per node, in parallel.
    umount_under "$STATE" "$DATA"
    local -a rms=()
    if [ -d "$DATA" ]; then
        say "removing $DATA"
        for f in "$DATA"/*; do
            [ -e "$f" ] || continue
            rm -rf "$f" 2>/dev/null &
            rms+=("$!")
        done
        for pid in "${rms[@]}"; do wait "$pid" || true; done
    fi
    remove_dirs "$STATE" "$DATA"
    say "down"
}

node_arg() { # I -> checks it against the rig
    local n
    n=$(recorded_nodes)
    [ -n "$n" ] || die "the rig is not up (run: $0 up)"
    if ! [[ ${1:-} =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ] || [ "$1" -gt "$n" ]; then
        die "node must be 1 to $n, not '${1:-}'"
    fi
}

cmd_stop_node() { # I
    local i=$1 started=$SECONDS
    node_arg "$i"
    lock
    [ "$i" -ne 1 ] || say "warning: $(ns 1) is the only manager: the swarm has no control plane until start-node 1"
    # The link first, so that no FIN or RST reaches the other nodes: a dead machine, not a shutdown.
    ip link set "$(veth "$i")" down 2>/dev/null || true
    kill_node_processes "$i"
    say "$(ns "$i") stopped: link down, dockerd, containerd, shims and containers killed ($((SECONDS - started)) s)"
}

cmd_start_node() { # I
    local i=$1 n started=$SECONDS
    node_arg "$i"
    n=$(recorded_nodes)
    lock
    ensure_bridge
    ensure_node_net "$i"
    if engine_pid "$i" >/dev/null; then
        say "$(ns "$i")'s dockerd is running"
    else
        say "starting dockerd of $(ns "$i") (log: $(logfile "$i"))"
        start_engine "$i"
    fi
    wait_engine "$i"
    # A manager that starts again sees every node Unknown until its agent reconnects: after node 1,
    # wait for every node whose engine runs.
    local j deadline=$((SECONDS + 60)) ls missing
    local -a want=("$i")
    if [ "$i" -eq 1 ]; then
        for ((j = 2; j <= n; j++)); do
            if engine_pid "$j" >/dev/null; then want+=("$j"); fi
        done
    fi
    say "waiting for $(for j in "${want[@]}"; do ns "$j"; echo; done | oneline) to be Ready"
    while :; do
        ls=$(dk 1 node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null || true)
        missing=""
        for j in "${want[@]}"; do
            grep -qxF "$(ns "$j") Ready" <<<"$ls" || missing+=" $(ns "$j")"
        done
        [ -n "$missing" ] || break
        [ "$SECONDS" -lt "$deadline" ] ||
            die "not Ready 60 s after the start of $(ns "$i"):$missing (log: $(logfile "$i"))"
        sleep 0.5
    done
    say "$(ns "$i") is Ready ($((SECONDS - started)) s; all nodes: $(nodes_verdict "$n"))"
}

cmd_status() {
    local n i pid code rc=0 v
    n=$(recorded_nodes)
    if [ -z "$n" ]; then
        echo "swarm rig: down (no state in $STATE)"
        return 1
    fi
    echo "engines:"
    for ((i = 1; i <= n; i++)); do
        v=$(veth "$i")
        if pid=$(engine_pid "$i"); then
            printf '  %s  %s  dockerd pid %s  swarm %s  link %s\n' "$(ns "$i")" "$(ip_of "$i")" "$pid" \
                "$(swarm_state "$i" | cut -d' ' -f1)" "$(cat "/sys/class/net/$v/operstate" 2>/dev/null || echo missing)"
        else
            printf '  %s  %s  dockerd not running  link %s\n' "$(ns "$i")" "$(ip_of "$i")" \
                "$(cat "/sys/class/net/$v/operstate" 2>/dev/null || echo missing)"
            rc=1
        fi
    done
    echo "nodes (docker -H $(host_of 1) node ls):"
    if ! dk 1 node ls 2>&1 | sed 's/^/  /'; then rc=1; fi
    [ "$(nodes_verdict "$n")" = ok ] || {
        echo "  => $(nodes_verdict "$n")"
        rc=1
    }
    code=$(registry_code)
    if pid=$(registry_pid); then
        printf 'registry %s: pid %s, https://%s/v2/ answers %s' "$REGISTRY" "$pid" "$REGISTRY" "${code:-nothing}"
        if [ "$code" = 200 ]; then
            printf ', repositories: %s\n' "$(curl -s -m 3 --cacert "$STATE/registry/ca.crt" "https://$REGISTRY/v2/_catalog" |
                sed -n 's/.*"repositories":\[\(.*\)\].*/\1/p' | tr -d '"' | sed 's/,/, /g')"
        else
            echo
            rc=1
        fi
    else
        echo "registry $REGISTRY: not running (log: $STATE/registry.log)"
        rc=1
    fi
    return "$rc"
}

cmd_env() {
    local n
    n=$(recorded_nodes)
    [ -n "$n" ] || die "the rig is not up (run: $0 up)"
    print_env "$n"
}

main() {
    [ $# -ge 1 ] || usage
    local cmd=$1
    shift
    case $cmd in
        up) [ $# -le 1 ] || usage; cmd_up "$@" ;;
        down) [ $# -eq 0 ] || usage; cmd_down ;;
        status) [ $# -eq 0 ] || usage; cmd_status ;;
        env) [ $# -eq 0 ] || usage; cmd_env ;;
        stop-node) [ $# -eq 1 ] || usage; cmd_stop_node "$1" ;;
        start-node) [ $# -eq 1 ] || usage; cmd_start_node "$1" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
