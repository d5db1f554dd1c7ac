#!/usr/bin/env bash
# Starts the local AWS stack: `cargo lambda watch --only-lambda-apis` (Lambda Runtime + Invoke
# APIs on 127.0.0.1:9000) and LocalStack in host mode (127.0.0.1:4566) with our
# `vulnflow-native` Lambda executor. Each is started only if not already running and healthy.
# PID files: .local/run/, logs: .local/logs/. Stop with infra/local/down.sh.
#
# Does not build Rust: the function binaries must exist in $VULNFLOW_BIN_DIR
# (default <repo>/target/debug; `cargo build --workspace` makes them).
#
# Env overrides: VULNFLOW_BIN_DIR, LOCALSTACK_START_TIMEOUT (s, default 120),
# VULNFLOW_ALLOW_MISSING_BINS=1 (only warn about missing function binaries),
# LOCALSTACK_DEBUG=1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$REPO/.local"
VENV="$LOCAL/venv"
RUN="$LOCAL/run"
LOGS="$LOCAL/logs"
export VULNFLOW_BIN_DIR="${VULNFLOW_BIN_DIR:-$REPO/target/debug}"
GATEWAY="127.0.0.1:4566"
CL_ADDR="127.0.0.1"
CL_PORT=9000
TIMEOUT="${LOCALSTACK_START_TIMEOUT:-120}"

log() { printf '[up] %s\n' "$*"; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

bash "$REPO/infra/local/install.sh"
mkdir -p "$RUN" "$LOGS/functions"

# -- the function binaries ---------------------------------------------------------------------
missing=()
for dir in "$REPO"/functions/*/; do
    name="$(basename "$dir")"
    [[ -x "$VULNFLOW_BIN_DIR/$name" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
    msg="function binaries missing in $VULNFLOW_BIN_DIR: ${missing[*]} (run: cargo build --workspace)"
    [[ "${VULNFLOW_ALLOW_MISSING_BINS:-0}" == 1 ]] && log "warning: $msg" || die "$msg"
fi

# -- helpers -----------------------------------------------------------------------------------
# running NAME: the process of .local/run/NAME.pid is alive (and is what we started).
running() {
    local pidfile="$RUN/$1.pid" pid
    [[ -f "$pidfile" ]] || return 1
    pid="$(cat "$pidfile")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && grep -qa "$2" "/proc/$pid/cmdline" 2>/dev/null
}
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# start_bg NAME LOGFILE CMD...: new session (setsid) so down.sh can end the whole process group
# (LocalStack's DynamoDB Local JVM and function processes are its children); the pid is written
# by the session leader itself, so it is exact.
start_bg() {
    local name="$1" logfile="$2"; shift 2
    : >"$logfile"
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" >>"$logfile" 2>&1 </dev/null &
    for _ in $(seq 50); do [[ -s "$RUN/$name.pid" ]] && return 0; sleep 0.1; done
    die "could not start $name (see $logfile)"
}

ddb_ping() {
    # Any well-formed answer to ListTables means DynamoDB Local is up behind LocalStack.
    curl -sf -m 30 -o /dev/null "http://$GATEWAY/" \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
        -d '{}'
}
ls_healthy() {
    curl -sf -m 5 "http://$GATEWAY/_localstack/health" 2>/dev/null |
        "$VENV/bin/python" -c 'import json,sys; h=json.load(sys.stdin); sys.exit(0 if h.get("services") else 1)' 2>/dev/null
}

# -- cargo lambda watch --------------------------------------------------------------------------
if running cargo-lambda "cargo-lambda" && port_open "$CL_ADDR" "$CL_PORT"; then
    log "cargo lambda watch already running (pid $(cat "$RUN/cargo-lambda.pid"))"
else
    port_open "$CL_ADDR" "$CL_PORT" && die "port $CL_PORT is taken by a process up.sh did not start"
    log "starting cargo lambda watch --only-lambda-apis on $CL_ADDR:$CL_PORT"
    # --only-lambda-apis: the executor plugin runs the binaries itself (with the template's env);
    # --ignore-changes: no file watcher on the repo. It must run in the repo: it serves only names
    # of the workspace's binaries. `cargo` must be on PATH (it reads `cargo metadata`).
    (cd "$REPO" && PATH="$VENV/bin:$PATH" start_bg cargo-lambda "$LOGS/cargo-lambda.log" \
        "$VENV/bin/cargo-lambda" lambda watch --only-lambda-apis --ignore-changes \
        -A "$CL_ADDR" -P "$CL_PORT")
    for _ in $(seq 150); do port_open "$CL_ADDR" "$CL_PORT" && break; sleep 0.2; done
    port_open "$CL_ADDR" "$CL_PORT" || die "cargo lambda watch did not listen on $CL_PORT; see $LOGS/cargo-lambda.log"
fi

# -- LocalStack --------------------------------------------------------------------------------
if running localstack "localstack.runtime.main" && ls_healthy; then
    log "LocalStack already running (pid $(cat "$RUN/localstack.pid"))"
    # The executor reads VULNFLOW_BIN_DIR at LocalStack's start: a different one needs a restart.
    if [[ "$(cat "$RUN/bin-dir" 2>/dev/null)" != "$VULNFLOW_BIN_DIR" ]]; then
        die "LocalStack runs with VULNFLOW_BIN_DIR=$(cat "$RUN/bin-dir" 2>/dev/null), not $VULNFLOW_BIN_DIR: run infra/local/down.sh first"
    fi
else
    if running localstack "localstack.runtime.main"; then
        die "LocalStack (pid $(cat "$RUN/localstack.pid")) runs but is not healthy; run infra/local/down.sh, see $LOGS/localstack.log"
    fi
    port_open 127.0.0.1 4566 && die "port 4566 is taken by a process up.sh did not start"
    log "starting LocalStack (host mode) on $GATEWAY"
    printf '%s' "$VULNFLOW_BIN_DIR" >"$RUN/bin-dir"
    started=$(date +%s)
    (
        cd "$REPO"
        # Why each setting: see shared/notes/local-aws.md.
        export OVERRIDE_IN_DOCKER=0 \
            GATEWAY_LISTEN="$GATEWAY" GATEWAY_SERVER=hypercorn \
            DNS_ADDRESS=0 SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
            LOCALSTACK_TELEMETRY_DISABLED=1 \
            FILESYSTEM_ROOT="$LOCAL/localstack" \
            SERVICES="s3,dynamodb,stepfunctions,lambda,cloudformation,iam,sts,events,logs,secretsmanager,apigateway" \
            LAMBDA_RUNTIME_EXECUTOR=vulnflow-native \
            LAMBDA_KEEPALIVE_MS="${LAMBDA_KEEPALIVE_MS:-3600000}" \
            VULNFLOW_REPO="$REPO" \
            VULNFLOW_BIN_DIR="$VULNFLOW_BIN_DIR" \
            VULNFLOW_FUNCTION_LOG_DIR="$LOGS/functions" \
            VULNFLOW_CARGO_LAMBDA_URL="http://$CL_ADDR:$CL_PORT" \
            DEBUG="${LOCALSTACK_DEBUG:-0}"
        # LAMBDA_KEEPALIVE_MS: keep idle environments (= function processes) for an hour.
        start_bg localstack "$LOGS/localstack.log" "$VENV/bin/python" -m localstack.runtime.main
    )
    until ls_healthy; do
        running localstack "localstack.runtime.main" ||
            die "LocalStack exited during start; see $LOGS/localstack.log"
        (($(date +%s) - started < TIMEOUT)) ||
            die "LocalStack not healthy after ${TIMEOUT}s; see $LOGS/localstack.log"
        sleep 0.5
    done
    log "LocalStack healthy after $(($(date +%s) - started))s"
fi

# DynamoDB Local is started lazily on the first DynamoDB call: do it now, so tests don't pay it.
ddb_ping || die "DynamoDB does not answer through LocalStack; see $LOGS/localstack.log"
log "ready: http://$GATEWAY (bins: $VULNFLOW_BIN_DIR, function logs: $LOGS/functions/)"
