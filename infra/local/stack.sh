# Sourced by test.sh and demo.sh: starts the local stack if it is not running, deploys
# the template into it, and stops it on exit if this script started it.

# Local settings: poll the simulator's export every second, and make several chunks
# out of a small tenant; wait out at most 5 s of rate limiting per call, and give up on a
# scanner silent for 10 s. LocalStack's community edition runs no API Gateway
# authorizers: the API function checks tokens. The scheduler ticks every minute, so
# that a test sees a scheduled sync start. Finalize sweeps 100 assets an invocation, so
# that the tests' tenants take several. The simulator listens on http://127.0.0.1:PORT:
# the scanner allow list names that address, and no other internal one.
LOCAL_STACK_PARAMETERS=(--parameter ExportPollSeconds=1 --parameter ExportAssetsPerChunk=50
    --parameter ThrottleWaitSeconds=5 --parameter ScannerTimeoutSeconds=10 --parameter SweepPageAssets=100
    --parameter ApiAuthorizer=in-function --parameter "DispatchSchedule=rate(1 minute)"
    --parameter ScannerAllowList=127.0.0.1)

start_local_stack() {
    if [[ -s "$REPO/.local/run/localstack.pid" ]] && kill -0 "$(cat "$REPO/.local/run/localstack.pid")" 2>/dev/null; then
        echo "[stack] the local stack is already running: leaving it running afterwards"
    elif [[ "${KEEP_STACK:-0}" != 1 ]]; then
        trap 'bash "$REPO/infra/local/down.sh"' EXIT
    fi
    bash "$REPO/infra/local/up.sh"
    "$REPO/.local/venv/bin/python" "$REPO/infra/local/deploy.py" --stack-name vulnflow-local "${LOCAL_STACK_PARAMETERS[@]}"
}

# Builds the workspace's binaries (the functions the stack runs among them), starts and
# deploys the local stack, then runs the workspace binary $1 with the other arguments.
# VULNFLOW_PROFILE=release builds and runs optimized binaries, as Lambda would run them.
run_on_local_stack() {
    local binary="$1" profile="${VULNFLOW_PROFILE:-debug}"
    shift
    echo "[$binary] building the workspace ($profile)"
    if [[ "$profile" == release ]]; then
        cargo build --workspace --bins --locked --release
    else
        cargo build --workspace --bins --locked
    fi
    export VULNFLOW_BIN_DIR="$REPO/target/$profile"
    start_local_stack
    "$REPO/target/$profile/$binary" "$@"
}
