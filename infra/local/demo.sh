#!/usr/bin/env bash
# The demo: starts the local stack, deploys vulnflow into it, and runs two full syncs of
# the bundled Tenable simulator through the state machine, printing progress, each job's
# stages and counts, and the sync history. DEMO_ASSETS / DEMO_FINDINGS_PER_ASSET size
# the simulated tenant; KEEP_STACK=1 leaves the stack running afterwards.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
source "$REPO/infra/local/stack.sh"

run_on_local_stack demo
