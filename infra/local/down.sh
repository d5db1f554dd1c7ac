#!/usr/bin/env bash
# Stops what infra/local/up.sh started, by its PID files in .local/run/: SIGTERM to each process
# group (LocalStack's group holds DynamoDB Local's JVM and the function processes), wait, then
# SIGKILL what is left. Never touches processes it did not start.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="$REPO/.local/run"

log() { printf '[down] %s\n' "$*"; }

group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# descendants PID: "pid:starttime" of every process below PID. LocalStack starts DynamoDB Local's
# JVM in a session of its own, so ending LocalStack's group alone could orphan it; the start
# time guards against a recycled pid.
descendants() {
    local kids k
    kids="$(ps -e -o pid=,ppid= | awk -v p="$1" '$2 == p { print $1 }')"
    for k in $kids; do
        echo "$k:$(starttime "$k")"
        descendants "$k"
    done
}
starttime() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }
same_alive() { [[ -n "${1#*:}" && "$(starttime "${1%%:*}")" == "${1#*:}" ]]; }

stop() {
    local name="$1" expect="$2" pidfile="$RUN/$1.pid" pid
    [[ -f "$pidfile" ]] || { log "$name: not running (no pid file)"; return 0; }
    pid="$(cat "$pidfile")"
    # Only a session/group leader we started (pid == pgid, expected command) is ours to end.
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        if [[ -n "$pid" ]] && group_alive "$pid"; then
            log "$name: leader $pid gone, ending the rest of its group"
        else
            log "$name: not running (stale pid file)"; rm -f "$pidfile"; return 0
        fi
    elif ! grep -qa "$expect" "/proc/$pid/cmdline" 2>/dev/null ||
        [[ "$(ps -o pgid= -p "$pid" | tr -d ' ')" != "$pid" ]]; then
        log "$name: pid $pid is not the process up.sh started; leaving it alone"
        rm -f "$pidfile"; return 0
    fi
    local kids d left
    kids="$(descendants "$pid")"
    log "$name: stopping process group $pid"
    kill -TERM -- "-$pid" 2>/dev/null
    for _ in $(seq 150); do group_alive "$pid" || break; sleep 0.1; done  # LocalStack needs ~6 s
    if group_alive "$pid"; then
        log "$name: still running after 15 s, sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null
        sleep 0.5
    fi
    # children that live in groups of their own (DynamoDB Local) and outlived their parent
    left=()
    for d in $kids; do same_alive "$d" && left+=("${d%%:*}"); done
    if ((${#left[@]})); then
        log "$name: ending leftover children ${left[*]}"
        kill -TERM "${left[@]}" 2>/dev/null
        for _ in $(seq 50); do
            alive=0; for d in $kids; do same_alive "$d" && alive=1; done
            ((alive)) || break; sleep 0.1
        done
        for d in $kids; do same_alive "$d" && kill -KILL "${d%%:*}" 2>/dev/null; done
    fi
    rm -f "$pidfile"
}

stop localstack "localstack.runtime.main"
rm -f "$RUN/bin-dir"
stop cargo-lambda "cargo-lambda"
