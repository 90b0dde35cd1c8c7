# shellcheck shell=bash
# Sourced by setup.sh and swarm-rig.sh: reading a daemon's pidfile without trusting a pid that came
# round again to another process.

# The pid in FILE, if that process is alive (not a zombie), runs COMM and, given ARG, has it
# among its arguments.
# (dockerd writes its pidfiles without a newline: read fails at EOF but still sets the variable.)
live_pid() { # FILE COMM [ARG]
    local pid="" comm="" stat word=""
    [ -f "$1" ] || return 1
    read -r pid 2>/dev/null <"$1" || true
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    read -r comm 2>/dev/null <"/proc/$pid/comm" || return 1
    [ "$comm" = "$2" ] || return 1
    read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] || return 1
    if [ -n "${3:-}" ]; then
        while IFS= read -r -d '' word; do
            [ "$word" = "$3" ] && break
        done 2>/dev/null <"/proc/$pid/cmdline"
        [ "$word" = "$3" ] || return 1
    fi
    printf '%s\n' "$pid"
}
