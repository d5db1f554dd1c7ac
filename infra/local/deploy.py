#!/usr/bin/env python3
"""Deploy infra/template.yaml (plain CloudFormation) as a stack, locally or on AWS.

Run it with the .local venv's python (it has boto3):

    .local/venv/bin/python infra/local/deploy.py                      # LocalStack (up.sh)
    .local/venv/bin/python infra/local/deploy.py --aws --region eu-west-1

Steps: make sure the artifact bucket exists; upload one zip per function (every directory under
functions/ is a function, its binary has the directory's name) to
s3://<bucket>/<prefix>/functions/<name>.zip and the state machine definition(s) to
s3://<bucket>/<prefix>/statemachine/<file>, where <prefix> is a hash of all that content (so a
change forces CloudFormation to update, and an unchanged deploy uploads nothing); create or
update the stack with ArtifactBucket/ArtifactPrefix (+ --parameter Key=Value); wait; write the
outputs to .local/stack-outputs.json.

Function zips:
  --aws   target/lambda/<name>/bootstrap.zip from
          `cargo lambda build --release --arm64 --output-format zip` (must exist already).
  local   a stub `bootstrap` script that execs $VULNFLOW_BIN_DIR/<name>: LocalStack's
          vulnflow-native executor runs the native binary itself (Handler = binary name); the zip
          is there because CloudFormation requires code. It carries the binary's sha256, so a
          deploy after `cargo build` replaces the function's running processes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path

import boto3
import botocore.exceptions
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
LOCAL_ENDPOINT = "http://127.0.0.1:4566"


def say(msg: str) -> None:
    print(f"[deploy] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"[deploy] ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# -- artifacts -----------------------------------------------------------------------------------


def function_names() -> list[str]:
    names = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "Cargo.toml").is_file())
    if not names:
        die(f"no functions under {REPO / 'functions'}")
    return names


def _zip_bytes(files: dict[str, tuple[bytes, int]]) -> bytes:
    """Deterministic zip (fixed timestamps) so unchanged content gives the same hash."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def local_function_zip(name: str, bin_dir: Path) -> bytes:
    binary = bin_dir / name
    if binary.is_file():
        digest = _file_sha256(binary)
    else:
        say(f"warning: {binary} missing (cargo build --workspace); invocations of {name} will fail")
        digest = "missing"
    script = (
        "#!/bin/sh\n"
        "# vulnflow local stub: LocalStack's vulnflow-native executor runs the native binary\n"
        "# $VULNFLOW_BIN_DIR/<Handler> itself; this file only satisfies CloudFormation.\n"
        f"# binary sha256: {digest}\n"
        f'exec "${{VULNFLOW_BIN_DIR:?}}/{name}" "$@"\n'
    )
    return _zip_bytes({"bootstrap": (script.encode(), 0o755)})


def aws_function_zip(name: str) -> bytes:
    path = REPO / "target" / "lambda" / name / "bootstrap.zip"
    if not path.is_file():
        die(
            f"{path} not found: build the functions first with\n"
            "    cargo lambda build --release --arm64 --output-format zip"
        )
    return path.read_bytes()


def collect_artifacts(args) -> tuple[str, dict[str, bytes]]:
    """Returns (prefix, {relative key: bytes})."""
    artifacts: dict[str, bytes] = {}
    bin_dir = Path(os.environ.get("VULNFLOW_BIN_DIR") or REPO / "target" / "debug")
    for name in function_names():
        data = aws_function_zip(name) if args.aws else local_function_zip(name, bin_dir)
        artifacts[f"functions/{name}.zip"] = data
    sm_dir = Path(args.statemachine_dir)
    definitions = sorted(p for p in sm_dir.glob("*.json") if p.is_file()) if sm_dir.is_dir() else []
    if not any(p.name == "sync.asl.json" for p in definitions):
        say(f"warning: {sm_dir / 'sync.asl.json'} not found")
    for path in definitions:
        try:
            json.loads(path.read_text())
        except ValueError as e:
            die(f"{path} is not valid JSON: {e}")
        artifacts[f"statemachine/{path.name}"] = path.read_bytes()
    h = hashlib.sha256()
    for key in sorted(artifacts):
        h.update(key.encode() + b"\0" + hashlib.sha256(artifacts[key]).digest())
    return h.hexdigest()[:16], artifacts


def ensure_bucket(s3, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    say(f"creating bucket {bucket}")
    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    try:
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
    except botocore.exceptions.ClientError:
        pass  # not essential (and partly unimplemented locally)


def upload(s3, bucket: str, prefix: str, artifacts: dict[str, bytes]) -> None:
    uploaded = 0
    for rel, data in artifacts.items():
        key = f"{prefix}/{rel}"
        try:
            s3.head_object(Bucket=bucket, Key=key)
            continue  # content-addressed prefix: present means identical
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        uploaded += 1
    say(f"artifacts: s3://{bucket}/{prefix}/ ({uploaded} uploaded, {len(artifacts) - uploaded} present)")


# -- stack ---------------------------------------------------------------------------------------


def template_parameters(cfn, body: str | None, url: str | None) -> set[str]:
    kwargs = {"TemplateBody": body} if body else {"TemplateURL": url}
    try:
        return {p["ParameterKey"] for p in cfn.validate_template(**kwargs).get("Parameters", [])}
    except botocore.exceptions.ClientError as e:
        die(f"template is not valid: {e.response['Error']['Message']}")
    return set()


def stack_status(cfn, name: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except botocore.exceptions.ClientError as e:
        if "does not exist" in e.response["Error"]["Message"]:
            return None
        raise


def wait_for_stack(cfn, name: str, since: float, poll: float) -> str:
    while True:
        status = stack_status(cfn, name)
        if status is None:
            return "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(poll)


def wait_deleted(cfn, name: str, poll: float, limit: float = 900) -> None:
    # The status may still read CREATE_FAILED right after delete_stack, and LocalStack shows
    # DELETE_FAILED for a moment before a failed stack goes: wait, re-asking a few times.
    deadline = time.time() + limit
    failed_seen = 0
    while (status := stack_status(cfn, name)) not in (None, "DELETE_COMPLETE"):
        if status == "DELETE_FAILED":
            failed_seen += 1
            if failed_seen > 5:
                print_failures(cfn, name, 0)
                die(f"could not delete stack {name} (DELETE_FAILED); delete it by hand")
            cfn.delete_stack(StackName=name)
        if time.time() > deadline:
            die(f"stack {name} still {status} after {limit:.0f}s")
        time.sleep(max(poll, 1.0))


def print_failures(cfn, name: str, since: float) -> None:
    try:
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
    except botocore.exceptions.ClientError:
        return
    failed = [
        e
        for e in events
        if e["Timestamp"].timestamp() >= since - 5
        and "FAILED" in e.get("ResourceStatus", "")
        and (e.get("ResourceStatusReason") or e.get("ResourceType") != "AWS::CloudFormation::Stack")
    ]
    for e in reversed(failed):
        say(
            f"  {e['ResourceStatus']} {e['LogicalResourceId']} ({e.get('ResourceType')}): "
            f"{e.get('ResourceStatusReason', '')}"
        )
    if not failed:
        say("  (no failed resource events reported)")


def deploy_stack(cfn, args, template: Path, s3, bucket: str, prefix: str, params: dict) -> None:
    body = template.read_text()
    url = None
    if len(body.encode()) > 51_200:  # CloudFormation's TemplateBody limit
        key = f"{prefix}/template-{hashlib.sha256(body.encode()).hexdigest()[:16]}.yaml"
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key})
        body = None

    declared = template_parameters(cfn, body, url)
    for key in list(params):
        if key not in declared:
            say(f"warning: template declares no parameter {key}; not passing it")
            params.pop(key)
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()]
    common = dict(
        StackName=args.stack_name,
        Parameters=parameters,
        Capabilities=CAPABILITIES,
        **({"TemplateBody": body} if body else {"TemplateURL": url}),
    )

    status = stack_status(cfn, args.stack_name)
    if status and status.endswith("_IN_PROGRESS"):
        say(f"stack {args.stack_name} is {status}; waiting for it first")
        status = wait_for_stack(cfn, args.stack_name, time.time(), args.poll)
    if status in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED"):
        # A stack that never got created cannot be updated: start over.
        say(f"stack {args.stack_name} is {status}; deleting it to create it again")
        cfn.delete_stack(StackName=args.stack_name)
        wait_deleted(cfn, args.stack_name, args.poll)
        status = None

    since = time.time()
    if status in (None, "DELETE_COMPLETE"):
        say(f"creating stack {args.stack_name}")
        # ROLLBACK keeps the failed events readable; the next deploy deletes the dead stack.
        cfn.create_stack(**common, OnFailure="ROLLBACK")
        ok = {"CREATE_COMPLETE"}
    else:
        say(f"updating stack {args.stack_name} ({status})")
        try:
            cfn.update_stack(**common)
        except botocore.exceptions.ClientError as e:
            if "No updates are to be performed" in e.response["Error"]["Message"]:
                say("no changes")
                return
            raise
        ok = {"UPDATE_COMPLETE"}

    final = wait_for_stack(cfn, args.stack_name, since, args.poll)
    say(f"stack {args.stack_name}: {final} after {time.time() - since:.1f}s")
    if final not in ok:
        print_failures(cfn, args.stack_name, since)
        die(f"stack {args.stack_name} ended in {final}")


def write_outputs(cfn, name: str, path: Path) -> dict:
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(outputs, indent=2, sort_keys=True) + "\n")
    say(f"outputs -> {path}")
    print(json.dumps(outputs, indent=2, sort_keys=True))
    return outputs


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stack-name", default="vulnflow-local")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--endpoint-url", default=None, help=f"default {LOCAL_ENDPOINT}")
    where.add_argument("--aws", action="store_true", help="deploy to real AWS (default chain credentials)")
    p.add_argument("--region", default=None, help="default: us-east-1 locally, AWS_REGION on AWS")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--template", default=str(REPO / "infra" / "template.yaml"))
    p.add_argument("--statemachine-dir", default=str(REPO / "statemachine"))
    p.add_argument("--bucket", default=None, help="artifact bucket (default derived)")
    p.add_argument("--outputs-file", default=str(REPO / ".local" / "stack-outputs.json"))
    args = p.parse_args(argv)
    if not args.aws and not args.endpoint_url:
        args.endpoint_url = LOCAL_ENDPOINT
    if args.region is None:
        args.region = (
            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            if args.aws
            else "us-east-1"
        )
    args.poll = 5.0 if args.aws else 0.5
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    template = Path(args.template)
    if not template.is_file():
        die(f"template {template} not found")
    extra = {}
    for item in args.parameter:
        if "=" not in item:
            die(f"--parameter wants KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        extra[k] = v

    if args.aws:
        session = boto3.Session(region_name=args.region)
        client_kw = {}
    else:
        # LocalStack accepts any credentials; don't let a developer's real ones leak into it.
        session = boto3.Session(
            region_name=args.region, aws_access_key_id="test", aws_secret_access_key="test"
        )
        client_kw = {"endpoint_url": args.endpoint_url}
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"})
    s3 = session.client("s3", config=cfg, **client_kw)
    cfn = session.client("cloudformation", config=cfg, **client_kw)
    try:
        account = session.client("sts", **client_kw).get_caller_identity()["Account"]
    except botocore.exceptions.EndpointConnectionError:
        die(f"cannot reach {args.endpoint_url}: start LocalStack with infra/local/up.sh")
    except botocore.exceptions.NoCredentialsError:
        die("no AWS credentials found")

    bucket = args.bucket or (
        f"vulnflow-artifacts-{account}-{args.region}" if args.aws else "vulnflow-artifacts"
    )
    started = time.time()
    prefix, artifacts = collect_artifacts(args)
    ensure_bucket(s3, bucket, args.region)
    upload(s3, bucket, prefix, artifacts)
    params = {"ArtifactBucket": bucket, "ArtifactPrefix": prefix, **extra}
    deploy_stack(cfn, args, template, s3, bucket, prefix, params)
    write_outputs(cfn, args.stack_name, Path(args.outputs_file))
    say(f"done in {time.time() - started:.1f}s")


if __name__ == "__main__":
    main()
