"""LocalStack Lambda runtime executor that runs vulnflow's native Rust functions without Docker.

LocalStack (host mode) calls one `RuntimeExecutor` per Lambda execution environment:
`start(env_vars)` -> `invoke(payload)`* -> `stop()`. Here:

* start() launches the function's native binary (`$VULNFLOW_BIN_DIR/<Handler>`) with the
  function's configured environment (from the template) plus the standard Lambda variables, and
  `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:9000/.rt/<Handler>`, i.e. the Runtime API that
  `cargo lambda watch --only-lambda-apis` serves per binary name.
* invoke() POSTs the event to cargo-lambda's Invoke API
  (`/2015-03-31/functions/<Handler>/invocations`); cargo-lambda hands it to a process polling
  `/.rt/<Handler>/.../invocation/next` and answers 200 (result) or 500 (the function's
  `{"errorType", "errorMessage"}`). A 500 becomes an error InvocationResult, which LocalStack
  reports as `FunctionError: Unhandled` with that payload, so Step Functions sees the function's
  own errorType (e.g. `Vulnflow.ApiError`) in Retry/Catch and in the history.
* stop() ends the process (SIGTERM, then SIGKILL).
* As on AWS: past the function's Timeout the invocation fails with `Sandbox.Timedout` and the
  process is replaced; a process that exits mid-invocation gives `Runtime.ExitError` and is
  restarted.

Settings (environment of the LocalStack process, set by infra/local/up.sh): VULNFLOW_BIN_DIR
(where the binaries are), VULNFLOW_CARGO_LAMBDA_URL (default http://127.0.0.1:9000),
VULNFLOW_FUNCTION_LOG_DIR, VULNFLOW_REPO. A process keeps running the binary it was started
with: after `cargo build`, redeploy (deploy.py puts the binary's hash into the function's zip,
so the functions are updated and their processes replaced) or restart LocalStack.

Output of each process goes, line by line and prefixed with the environment id, to
`.local/logs/functions/<function-name>.log`. The environment's values are never logged.

cargo-lambda keys its queue by binary name only, so all processes polling `/.rt/<Handler>` may
take any invocation for that binary. Within one function configuration that is harmless (equal
environments), but two configurations (two functions or stacks with the same Handler, or old
and new during an update) must never poll at once: `_BinarySlot` gives the binary's queue to one
configuration at a time and ends the other configuration's processes on a switch (restarting
them on their next invocation). stop() also waits for in-flight invocations of its
configuration, since a sibling environment's event may be running in this process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

import requests
from plux import Plugin

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

LOG = logging.getLogger(__name__)

PLUGIN_NAME = "vulnflow-native"

# Variables LocalStack computes for its own init binary (RIE) / Docker setup; they mean nothing
# to a native process and are not part of a real Lambda environment.
_LOCALSTACK_INTERNAL_PREFIXES = ("LOCALSTACK_",)
_LOCALSTACK_INTERNAL_KEYS = {"EDGE_PORT", "AWS_LAMBDA_FUNCTION_TIMEOUT"}
# What a real provided.al2023 environment also has (the process does not inherit LocalStack's).
_BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _repo_root() -> Path:
    return Path(os.environ.get("VULNFLOW_REPO") or os.getcwd())


def _bin_dir() -> Path:
    return Path(os.environ.get("VULNFLOW_BIN_DIR") or _repo_root() / "target" / "debug")


def _log_dir() -> Path:
    return Path(
        os.environ.get("VULNFLOW_FUNCTION_LOG_DIR") or _repo_root() / ".local" / "logs" / "functions"
    )


def _cargo_lambda_url() -> str:
    return os.environ.get("VULNFLOW_CARGO_LAMBDA_URL", "http://127.0.0.1:9000").rstrip("/")


def _binary_name(function_version: FunctionVersion) -> str:
    # Our template's convention: Handler = binary name (provided.al2023 ignores Handler on AWS).
    return function_version.config.handler or function_version.id.function_name


class _FunctionLog:
    """One append-only log file per function, shared by its environments (lines never interleave
    mid-line), plus a small in-memory tail used for LocalStack's per-invocation logs."""

    _registry: dict[str, "_FunctionLog"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, function_name: str):
        directory = _log_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{function_name}.log"
        self._file = open(self.path, "a", encoding="utf-8", errors="replace", buffering=1)
        self._lock = threading.Lock()
        self.seq = 0  # number of lines written so far
        self.tail: deque[tuple[int, str]] = deque(maxlen=500)

    @classmethod
    def get(cls, function_name: str) -> "_FunctionLog":
        with cls._registry_lock:
            log = cls._registry.get(function_name)
            if log is None:
                log = cls._registry[function_name] = _FunctionLog(function_name)
            return log

    def write(self, env_id: str, line: str) -> None:
        with self._lock:
            self.seq += 1
            self.tail.append((self.seq, line))
            self._file.write(f"{time.strftime('%H:%M:%S')} [{env_id[:8]}] {line}\n")

    def lines_since(self, seq: int) -> list[str]:
        with self._lock:
            return [line for s, line in self.tail if s > seq]


def _infra_stopping() -> threading.Event:
    try:
        from localstack.runtime import events

        return events.infra_stopping
    except Exception:  # pragma: no cover - other LocalStack layouts
        return threading.Event()


class _BinarySlot:
    """Who may poll cargo-lambda's queue for one binary name.

    cargo-lambda routes an invocation to any process polling `/.rt/<binary>`, so processes of
    two different function configurations (two functions with the same Handler, or the old and
    new configuration during an update) must never poll at the same time, or one could run the
    other's event with the wrong environment. The slot has one owner configuration at a time;
    a configuration takes it over once the owner has no invocation in flight, and then the other
    configurations' processes are ended (they are restarted on their next invocation).
    Processes of the same configuration do share the queue: their environments are equal.
    """

    _registry: dict[str, "_BinarySlot"] = {}
    _registry_lock = threading.Lock()

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.owner: tuple | None = None
        self.inflight = 0
        self.executors: set["NativeRuntimeExecutor"] = set()
        self.crashes: dict[tuple, int] = {}  # unexpected process exits per configuration

    @classmethod
    def get(cls, binary: str) -> "_BinarySlot":
        with cls._registry_lock:
            return cls._registry.setdefault(binary, _BinarySlot())

    def start_if_owner(self, ex: "NativeRuntimeExecutor") -> bool:
        """At environment start: start polling now if that displaces nobody (under the lock, so
        no other configuration can take over in between). False: start on first invocation."""
        with self.cond:
            self.executors.add(ex)
            if self.owner in (None, ex.key):
                self.owner = ex.key
                ex._ensure_process()
                return True
            return False

    def acquire(self, ex: "NativeRuntimeExecutor", max_wait: float) -> None:
        with self.cond:
            self.executors.add(ex)
            deadline = time.monotonic() + max_wait
            while self.owner not in (None, ex.key) and self.inflight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    LOG.warning("vulnflow-native: %s still busy after %.0fs; taking it over", ex.binary, max_wait)
                    break
                self.cond.wait(timeout=min(left, 0.5))
            if self.owner != ex.key:
                # Nobody of theirs is in flight: end their processes before anyone of ours
                # posts an event (still under the lock, so a sibling cannot post meanwhile).
                for other in [e for e in self.executors if e.key != ex.key]:
                    other._end_process(reason="another configuration of this binary is invoked")
                self.owner = ex.key
            self.inflight += 1

    def release(self) -> None:
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def leave(self, ex: "NativeRuntimeExecutor", max_wait: float) -> None:
        """At environment stop: an invocation sent through a sibling environment may be running
        in this process, so wait (bounded) until the configuration has nothing in flight."""
        stopping = _infra_stopping()
        with self.cond:
            deadline = time.monotonic() + max_wait
            while self.owner == ex.key and self.inflight > 0 and not stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(timeout=min(left, 0.5))
            self.executors.discard(ex)
            if self.owner == ex.key and not any(e.key == ex.key for e in self.executors):
                self.owner = None


class NativeRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.binary = _binary_name(function_version)
        # one configuration = one function version as deployed (an update makes a new revision)
        self.key = (function_version.qualified_arn, function_version.config.revision_id)
        self.slot = _BinarySlot.get(self.binary)
        self.timeout_s = int(function_version.config.timeout or 3)
        self.process: subprocess.Popen | None = None
        self._proc_lock = threading.Lock()
        self.flog = _FunctionLog.get(function_version.id.function_name)
        self.session = requests.Session()
        self.session.trust_env = False  # never go through an HTTP proxy for loopback calls
        self._own_tail: deque[str] = deque(maxlen=200)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        binary_path = _bin_dir() / self.binary
        if not os.access(binary_path, os.X_OK):
            raise RuntimeError(
                f"vulnflow-native executor: no executable {binary_path} for function "
                f"{self.function_version.id.function_name} (Handler {self.binary!r}); "
                "build it first (cargo build) or set VULNFLOW_BIN_DIR"
            )
        env = dict(_BASE_ENV)
        env.update(
            {
                k: str(v)
                for k, v in env_vars.items()
                if k not in _LOCALSTACK_INTERNAL_KEYS
                and not k.startswith(_LOCALSTACK_INTERNAL_PREFIXES)
            }
        )
        # The template's variables win over everything but the runtime API address, as on AWS
        # (LocalStack already merged them last into env_vars; re-apply to be explicit).
        env.update({k: str(v) for k, v in (self.function_version.config.environment or {}).items()})
        env["AWS_LAMBDA_RUNTIME_API"] = f"{_cargo_lambda_url()}/.rt/{self.binary}"
        env.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
        LOG.debug(
            "environment %s of %s: %s with variables %s",
            self.id,
            self.function_version.qualified_arn,
            binary_path,
            sorted(env),  # names only: values may be secrets
        )
        self._binary_path, self._env = binary_path, env
        if not self.slot.start_if_owner(self):
            return  # another configuration owns the binary's queue: start on first invocation
        # A binary that dies at once (bad config, panic in main) is a startup failure.
        time.sleep(0.05)
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"function process {binary_path} exited at start with code "
                f"{self.process.returncode}; see {self.flog.path}"
            )

    def _ensure_process(self) -> None:
        with self._proc_lock:
            if self.process is not None and self.process.poll() is None:
                return
            # Same process group as LocalStack (no new session): down.sh ends them with it.
            self.process = subprocess.Popen(
                [str(self._binary_path)],
                env=self._env,
                cwd=str(self._binary_path.parent),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
            self.flog.write(self.id, f"--- started {self._binary_path} as pid {self.process.pid}")
            threading.Thread(
                target=self._pump_output,
                args=(self.process,),
                name=f"lambda-log-{self.id[:8]}",
                daemon=True,
            ).start()

    def _pump_output(self, proc: subprocess.Popen) -> None:
        assert proc.stdout
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._own_tail.append(line)
            self.flog.write(self.id, line)
        code = proc.wait()
        self.flog.write(self.id, f"--- pid {proc.pid} exited with code {code}")
        if not getattr(proc, "vulnflow_ended", False):
            with self.slot.cond:
                self.slot.crashes[self.key] = self.slot.crashes.get(self.key, 0) + 1

    def _end_process(self, reason: str) -> None:
        with self._proc_lock:
            proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.vulnflow_ended = True  # an intended end, not a crash
        self.flog.write(self.id, f"--- ending pid {proc.pid}: {reason}")
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self.slot.leave(self, max_wait=self.timeout_s + 5)
        self._end_process(reason="environment stopped")
        self.session.close()

    # -- invocation -----------------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        log_mark = self.flog.seq
        started = time.perf_counter()
        self.slot.acquire(self, max_wait=self.timeout_s + 65)
        try:
            # (re)start the process: first invocation after a deferred start, after a crash, or
            # after another configuration of the binary displaced it
            self._ensure_process()
        except Exception as e:
            self.slot.release()
            body, is_error = _error("Runtime.ExitError", f"cannot start {self._binary_path}: {e}")
        else:
            body, is_error = self._post(payload, request_id)  # releases the slot when done
        duration_ms = (time.perf_counter() - started) * 1000
        logs = (
            f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n"
            + "".join(f"{line}\n" for line in self.flog.lines_since(log_mark))
            + f"END RequestId: {request_id}\n"
            + f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\n"
        )
        return InvocationResult(request_id=request_id, payload=body, is_error=is_error, logs=logs)

    def _post(self, payload: dict, request_id: str) -> tuple[bytes, bool]:
        """Returns (payload bytes, is_error). The HTTP call runs in a thread so that the death of
        this environment's process or the function timeout ends the wait, as on AWS. The slot is
        released when cargo-lambda has answered, so an event of ours that is still queued can
        never be served by a process of another configuration; after a crash or timeout the
        answer may never come (the event died with its process), hence a short grace."""
        url = f"{_cargo_lambda_url()}/2015-03-31/functions/{self.binary}/invocations"
        timeout_s = self.timeout_s
        result: dict = {}
        release = _Once(self.slot.release)

        def call() -> None:
            try:
                result["response"] = self.session.post(
                    url,
                    data=payload["payload"].encode("utf-8"),
                    headers={
                        "content-type": "application/json",
                        # cargo-lambda keeps a request id it is given: the function then sees
                        # LocalStack's request id, which matches LocalStack's own logs.
                        "lambda-runtime-aws-request-id": request_id,
                    },
                    timeout=(5, timeout_s + 60),
                )
            except Exception as e:  # connection refused, reset, read timeout
                result["exception"] = e
            finally:
                release()

        def abandon(reason: str, restart_own: bool = True) -> None:
            # Like AWS, start afresh: end this environment's process (it may be the one still
            # running the event) and start a new one, which drains anything of ours still
            # queued; then give cargo-lambda a moment to answer before freeing the slot.
            if restart_own:
                self._end_process(reason=reason)
                self._ensure_process()

            def release_later() -> None:
                caller.join(timeout=2)
                release()

            threading.Thread(target=release_later, daemon=True).start()

        caller = threading.Thread(target=call, name=f"lambda-invoke-{request_id[:8]}", daemon=True)
        caller.start()
        deadline = time.monotonic() + timeout_s
        proc = self.process
        crashes_before = self.slot.crashes.get(self.key, 0)
        suspect_since = None
        while caller.is_alive():
            caller.join(timeout=0.1)
            if not caller.is_alive():
                break
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                abandon(f"runtime exited with status {code}")
                return _error(
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}",
                )
            # A sibling process of this configuration died: it may have held our event (the
            # shared queue does not say which process took it). If no answer follows shortly,
            # report the crash as AWS would.
            if suspect_since is None and self.slot.crashes.get(self.key, 0) != crashes_before:
                suspect_since = time.monotonic()
            if suspect_since is not None and time.monotonic() - suspect_since > 1.5:
                abandon("a sibling process exited", restart_own=False)
                return _error(
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error (a process of "
                    "this function exited during the invocation)",
                )
            if time.monotonic() > deadline:
                abandon(f"invocation {request_id} timed out after {timeout_s}s")
                return _error(
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
                )

        if "exception" in result:
            return _error(
                "Runtime.Unavailable",
                f"cannot reach cargo lambda watch at {url}: {result['exception']} "
                "(is infra/local/up.sh running?)",
            )
        response: requests.Response = result["response"]
        if response.status_code == 200:
            return response.content, False
        if response.status_code == 500:
            # The function returned an error: the body is lambda_runtime's Diagnostic JSON,
            # {"errorType": "...", "errorMessage": "..."}: exactly what AWS puts in the Payload.
            return _normalise_error_body(response.content), True
        # 404 "Missing function" (not a binary of the workspace) and other emulator errors
        return _error(
            "Runtime.InvalidEntrypoint",
            f"cargo lambda watch answered {response.status_code} for {self.binary!r}: "
            f"{response.text[:500]}",
        )

    # -- the rest of the executor interface ------------------------------------------------------

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # LOCALSTACK_HOSTNAME and AWS_ENDPOINT_URL (http://127.0.0.1:4566) are derived from this
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        from localstack import config

        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        return "\n".join(self._own_tail)

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        binary_path = _bin_dir() / _binary_name(function_version)
        if not binary_path.exists():
            # Not fatal: the binary may be built after the deploy; start() fails clearly.
            LOG.warning(
                "vulnflow-native: %s has no binary yet at %s",
                function_version.id.function_name,
                binary_path,
            )

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        # A TCP connect only: any HTTP request on cargo-lambda's "/" is taken as an invocation
        # of a default function and would hang.
        from urllib.parse import urlsplit

        url = urlsplit(_cargo_lambda_url())
        try:
            socket.create_connection((url.hostname, url.port or 80), timeout=2).close()
        except OSError:
            LOG.warning(
                "vulnflow-native: cargo lambda watch is not reachable at %s; Lambda invocations "
                "will fail until it runs (infra/local/up.sh starts it)",
                _cargo_lambda_url(),
            )
        return True


class _Once:
    """Calls fn at most once (the slot is released by whichever comes first)."""

    def __init__(self, fn) -> None:
        self._fn, self._lock, self._done = fn, threading.Lock(), False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._fn()


def _error(error_type: str, message: str) -> tuple[bytes, bool]:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode(), True


def _normalise_error_body(body: bytes) -> bytes:
    """Keep the function's own error JSON; wrap anything else so Step Functions still gets an
    errorType to match on."""
    try:
        parsed = json.loads(body)
        if isinstance(parsed, dict) and "errorType" in parsed:
            return body
    except ValueError:
        pass
    return json.dumps(
        {"errorType": "Runtime.Unknown", "errorMessage": body.decode("utf-8", "replace")[:4096]}
    ).encode()


class NativeRuntimeExecutorPlugin(Plugin):
    """Entry point in group localstack.lambda.runtime_executor; LocalStack selects it with
    LAMBDA_RUNTIME_EXECUTOR=vulnflow-native and calls load() to get the executor class."""

    namespace = "localstack.lambda.runtime_executor"
    name = PLUGIN_NAME

    def load(self, *args, **kwargs):
        return NativeRuntimeExecutor
