# Written by gitpaas's Python buildpack, sourced before every process of the slug starts.
#
# WEB_CONCURRENCY (read by gunicorn and uvicorn as their number of worker processes), unless the
# app sets it as a config var: as Heroku sets it, the lower of 2 × CPUs + 1 and one worker per
# 256 MB of the dyno's memory limit. So a standard-1X dyno (512 MB) gets 2, a standard-2X (1 GB) 4.
# DYNO_RAM is the limit in MB. Sourced, so: no `exit`, no `set -e`.

# (GITPAAS_CGROUP and GITPAAS_NPROC stand in for /sys/fs/cgroup and nproc in gitpaas's own tests.)
gitpaas_memory_mb() {
    local limit="" root=${GITPAAS_CGROUP:-/sys/fs/cgroup}
    if [ -r "$root/memory.max" ]; then                         # cgroup v2
        limit=$(cat "$root/memory.max")
    elif [ -r "$root/memory/memory.limit_in_bytes" ]; then     # cgroup v1
        limit=$(cat "$root/memory/memory.limit_in_bytes")
    fi
    case "$limit" in
        ''|max|*[!0-9]*) return 1 ;;
    esac
    limit=$((limit / 1048576))
    [ "$limit" -le 1048576 ] || return 1   # v1 reports an absurd number for "no limit"
    echo "$limit"
}

gitpaas_cpus() {
    local quota period root=${GITPAAS_CGROUP:-/sys/fs/cgroup}
    if [ -r "$root/cpu.max" ]; then
        read -r quota period < "$root/cpu.max"
        if [ "$quota" != max ] && [ "${period:-0}" -gt 0 ]; then
            echo $(( (quota + period - 1) / period ))
            return 0
        fi
    fi
    ${GITPAAS_NPROC:-nproc} 2>/dev/null || echo 1
}

if gitpaas_ram=$(gitpaas_memory_mb); then
    export DYNO_RAM=$gitpaas_ram
    if [ -z "${WEB_CONCURRENCY:-}" ]; then
        gitpaas_by_memory=$(( DYNO_RAM / 256 ))
        [ "$gitpaas_by_memory" -ge 1 ] || gitpaas_by_memory=1
        gitpaas_by_cpus=$(( $(gitpaas_cpus) * 2 + 1 ))
        if [ "$gitpaas_by_memory" -lt "$gitpaas_by_cpus" ]; then
            export WEB_CONCURRENCY=$gitpaas_by_memory
        else
            export WEB_CONCURRENCY=$gitpaas_by_cpus
        fi
        export WEB_CONCURRENCY_SET_BY=gitpaas
        unset gitpaas_by_memory gitpaas_by_cpus
    fi
fi
unset gitpaas_ram
unset -f gitpaas_memory_mb gitpaas_cpus
