#!/usr/bin/env bash
# The scale bench: `bash infra/local/scale.sh [FINDINGS]` (default 1,000,000; 20 findings
# an asset, SCALE_FINDINGS_PER_ASSET changes that). Starts the local stack, deploys
# vulnflow, then runs a full sync, an unchanged re-sync and a re-sync after 1 % of the
# findings are new, 1 % fixed, 1 % gone and some assets vanished; checks every count
# and every stored finding against the simulator, and prints wall time, findings/s,
# each stage's time, the findings each sync wrote and each function's peak memory.
# It is a benchmark, not a test: tests/e2e/tests/scale.rs runs the same checks small.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
source "$REPO/infra/local/stack.sh"

# The template's own chunk and sweep sizes, not the tests' small ones: what a sync costs
# depends on them (three state transitions and three invocations a chunk).
LOCAL_STACK_PARAMETERS+=(--parameter "ExportAssetsPerChunk=${SCALE_ASSETS_PER_CHUNK:-500}"
    --parameter "SweepPageAssets=${SCALE_SWEEP_PAGE_ASSETS:-1000}")

# The functions as Lambda runs them: optimized. A stack already running debug builds must
# be stopped first (infra/local/down.sh); up.sh says so.
export VULNFLOW_PROFILE="${VULNFLOW_PROFILE:-release}"

run_on_local_stack scale "${1:-1000000}"
