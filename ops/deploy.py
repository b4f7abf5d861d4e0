"""The one deploy path: package, migrate first, deploy the stack, check the migrate function and the health route.

    python -m ops.deploy --stage prod --region eu-central-1 --artifact-bucket BUCKET [--dry-run]
    python -m ops.deploy --stage prod --region eu-central-1 --artifact-bucket BUCKET --rollback VERSION

Every AWS call is an AWS CLI command, printed before it runs, and run with the CLI the project pins (`awscli` v1 in
requirements-dev.txt, installed beside this interpreter; the `aws` on PATH only if there is none); `--dry-run`
prints the same plan, builds and checks the template and the parameters, and calls nothing. Each deployed
template is kept in the artefact bucket under its version, which is what a rollback redeploys (its code zip is
already there, named by its hash).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ops.package import (APP_NAME, ROOT, PackageRefused, api_reserved_concurrency, function_names, function_timeout,
                         package, stage_config)

# Lambda keeps this much of the account's concurrency unreserved: reservations must leave it free.
UNRESERVED_MINIMUM = 100

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SECRET_PLACEHOLDER = "<hidden>"
# The CLI the project pins (requirements-dev.txt), beside the interpreter that runs this.
PINNED_CLI = Path(sys.executable).with_name("aws")

# `aws lambda invoke` waits for the function's answer, which Lambda sends when the function returns: at most its
# timeout after it started, plus its start-up. The CLI's read timeout must outlast that (its default is 60 s).
INVOKE_READ_MARGIN_SECONDS = 60
CONNECT_TIMEOUT_SECONDS = 10
# The CLI re-sends a request whose answer did not come within its read timeout (four times more, by default): an
# invocation is sent exactly once. In the environment of that call only.
SEND_ONCE = {"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}
# Lambda refused to start the function (429: a run of it is in progress and its reserved concurrency is 1, or the
# account is out of concurrency). Nothing ran, so sending again is safe; wait this long between tries.
BUSY = "TooManyRequestsException"
BUSY_RETRY_DELAY_SECONDS = 10.0


class DeployError(RuntimeError):
    """A step failed or a parameter is wrong; the message says which."""


@dataclass
class Step:
    """One command of the plan. `env` is set for it and printed; `env_from` names earlier outputs passed in the
    environment, never printed. `missing_ok`: an error code that means "there is none" (its output is then
    `null`); `busy_retry_seconds`: how long a refusal with `BUSY` is retried; `writes`: files written first."""

    name: str
    argv: list[str]
    capture: str | None = None
    env_from: dict[str, str] = field(default_factory=dict)
    check: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    missing_ok: str | None = None
    busy_retry_seconds: float = 0
    writes: dict[str, str] = field(default_factory=dict)

    def shown(self) -> str:
        prefix = " ".join([*(f"{var}={value}" for var, value in self.env.items()),
                           *(f"{var}=<{source}>" for var, source in self.env_from.items())])
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def cli() -> str:
    """The AWS CLI every step runs."""
    return str(PINNED_CLI) if PINNED_CLI.exists() else "aws"


def stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


def direct_database_parameter(stage: str) -> str:
    """SSM parameter with Neon's direct (non-pooler) connection string, used only by migrations."""
    return f"/3d-ultra/{stage}/database-url-direct"


def artifact_prefix(stage: str, version: str) -> str:
    return f"{APP_NAME}/{stage}/{version}"


def stage_burst(stage: str, throttle_rate: int, throttle_burst: int | None) -> int:
    """The stage's burst: as given, else the API function's reserved concurrency (else the rate)."""
    if throttle_burst is not None:
        return throttle_burst
    return api_reserved_concurrency(stage) or throttle_rate


def check_parameters(*, stage: str, region: str, bucket: str, alarm_email: str | None, throttle_rate: int,
                     throttle_burst: int | None, rollback: str | None = None) -> None:
    """Refuse a deploy whose parameters cannot be right, before anything is called."""
    problems = []
    try:
        stage_config(stage)
        limit = api_reserved_concurrency(stage)
    except KeyError:
        problems.append(f"no stage {stage!r} in .chalice/config.json")
        limit = None
    if not REGION.match(region or ""):
        problems.append(f"--region {region!r} is not an AWS region name (e.g. eu-central-1)")
    if not BUCKET.match(bucket or ""):
        problems.append(f"--artifact-bucket {bucket!r} is not an S3 bucket name")
    if not alarm_email and not rollback:
        problems.append("--alarm-email is required: the alarms go to the topic it subscribes (a rollback keeps "
                        "the stack's address)")
    if alarm_email:
        from email_validator import EmailNotValidError, validate_email

        try:
            validate_email(alarm_email, check_deliverability=False)
        except EmailNotValidError as exc:
            problems.append(f"--alarm-email: {exc}")
    burst = throttle_burst if throttle_burst is not None else limit or throttle_rate
    if throttle_rate < 1 or burst < throttle_rate:
        problems.append("the stage throttle needs a rate of at least 1 and a burst no smaller than the rate")
    elif limit and burst > limit:
        # API Gateway would admit more requests at once than Lambda runs at once: Lambda throttles the rest, which
        # API Gateway answers 500 (not 429), and the throttles alarm pages someone for it.
        problems.append(f"--throttle-burst {burst} exceeds the API function's reserved concurrency ({limit}): a "
                        "burst the stage admits would be throttled by Lambda and answered 500; keep the burst "
                        "within it (or raise reserved_concurrency in .chalice/config.json)")
    if problems:
        raise DeployError("; ".join(problems))


def check_build(build: Path, stage: str) -> dict:
    """The build's manifest, refusing one made for checking only (placeholder origins) or for another stage."""
    manifest = json.loads((build / "package.json").read_text())
    if manifest["stage"] != stage:
        raise DeployError(f"{build} was packaged for stage {manifest['stage']}, not {stage}")
    if manifest["placeholderOrigins"]:
        raise DeployError(f"{build} allows placeholder origins: it was packaged for checking, not for deploying")
    template = json.loads((build / "sam.json").read_text())
    prefix = f"/3d-ultra/{stage}/"
    for logical_id, name in function_names(stage).items():
        properties = template["Resources"][logical_id]["Properties"]
        if properties.get("FunctionName") != name:
            raise DeployError(f"{build}/sam.json: {logical_id} is not named {name}")
        for variable, value in properties["Environment"]["Variables"].items():
            # The functions' role may read only this stage's parameters: any other name fails at first request.
            if variable.endswith("_SSM_PARAMETER") and not value.startswith(prefix):
                raise DeployError(f"{variable}={value} is outside {prefix}, which the functions may read")
    return manifest


def reserved_concurrency(stage: str) -> int:
    """The concurrency the stage's functions reserve, all together."""
    functions = stage_config(stage).get("lambda_functions", {})
    return sum(f.get("reserved_concurrency") or 0 for f in functions.values())


def check_account_concurrency(account_limit: str, reservations: list[str], stage: str) -> None:
    """After the deploy the account must still have `UNRESERVED_MINIMUM` unreserved, or CloudFormation fails the
    functions mid-deploy. `account_limit` is get-account-settings' AccountLimit (its unreserved count already
    leaves out every reservation in the account, ours included); `reservations` get-function-concurrency's
    answer for each of our functions (`null` for one not yet created)."""
    limit = json.loads(account_limit)
    unreserved, total = limit["UnreservedConcurrentExecutions"], limit["ConcurrentExecutions"]
    current = sum((json.loads(answer) or {}).get("ReservedConcurrentExecutions") or 0 for answer in reservations)
    needed = reserved_concurrency(stage)
    left = unreserved + current - needed
    if left < UNRESERVED_MINIMUM:
        raise DeployError(
            f"the account has {unreserved} of its {total} concurrent executions unreserved; the functions reserve "
            f"{current} now and {needed} once deployed, which would leave {left}, and Lambda keeps at least "
            f"{UNRESERVED_MINIMUM} unreserved: ask for an increase (Service Quotas, \"Lambda concurrent executions\") "
            "or lower another function's reservation before deploying")


def check_api_gateway_role(output: str, region: str) -> None:
    """`aws apigateway get-account --query cloudwatchRoleArn` names the role API Gateway writes logs with, one
    per account and region for every API there: without it the stage's access log fails the stack mid-deploy."""
    if output.strip() in ("", "None", "null"):
        raise DeployError(
            f"API Gateway has no CloudWatch Logs role in {region} (an account-wide setting, shared by every API "
            "there), so the stage's access log cannot be written: set one once as docs/deploy.md's \"From zero to a "
            "deployed stage\" says, then deploy")


def named_parameters(build: Path, stage: str) -> list[str]:
    """Every SSM parameter the packaged functions name, and the direct database URL the deploy migrates with."""
    template = json.loads((build / "sam.json").read_text())
    named = {value for logical_id in function_names(stage)
             for variable, value in template["Resources"][logical_id]["Properties"]["Environment"]["Variables"].items()
             if variable.endswith("_SSM_PARAMETER")}
    return sorted(named | {direct_database_parameter(stage)})


def check_parameters_exist(output: str) -> None:
    """`aws ssm get-parameters --query InvalidParameters` lists the names that do not exist: there must be none,
    or the new functions would fail every request at start-up, after the migration already ran."""
    missing = json.loads(output) or []
    if missing:
        raise DeployError(f"the functions name SSM parameters that do not exist: {', '.join(sorted(missing))};"
                          " store them (see docs/deploy.md) before deploying")


def deploy_steps(*, stage: str, region: str, template: str, parameters: list[str], bucket: str,
                 prefix: str) -> list[Step]:
    # --s3-bucket: the CLI refuses a template over 51,200 bytes without it (ours is larger); it uploads the
    # template there and hands CloudFormation the URL.
    command = ["aws", "cloudformation", "deploy", "--region", region, "--stack-name", stack_name(stage),
               "--template-file", template, "--s3-bucket", bucket, "--s3-prefix", prefix,
               "--capabilities", "CAPABILITY_IAM", "--no-fail-on-empty-changeset"]
    if parameters:
        command += ["--parameter-overrides", *parameters]
    return [
        Step("deploy the stack", command),
        Step("read the API URL", ["aws", "cloudformation", "describe-stacks", "--region", region, "--stack-name",
                                  stack_name(stage), "--query", "Stacks[0].Outputs[?OutputKey==`ApiUrl`].OutputValue",
                                  "--output", "text"], capture="ApiUrl"),
    ]


def invoke_step(name: str, function: str, region: str, response: Path, *, capture: str,
                timeout_seconds: int) -> Step:
    """Invoke a function once with `{}` and wait as long as it may run; keep its answer in `response`. The step
    fails on a FunctionError. A refusal because the function is busy (nothing ran) is tried again meanwhile."""
    payload = response.with_name("empty-event.json")
    wait = timeout_seconds + INVOKE_READ_MARGIN_SECONDS
    # fileb://: the payload's bytes as they are, in CLI v1 and v2 alike (v2 would take an inline value for base64).
    return Step(name, ["aws", "lambda", "invoke", "--region", region, "--function-name", function,
                       "--payload", f"fileb://{payload}", "--cli-read-timeout", str(wait),
                       "--cli-connect-timeout", str(CONNECT_TIMEOUT_SECONDS), str(response)],
                capture=capture, check="function_error", env=dict(SEND_ONCE), busy_retry_seconds=wait,
                writes={str(payload): "{}"})


def account_checks(stage: str, region: str, bucket: str) -> list[Step]:
    """What must hold in the account before anything changes: concurrency left, the bucket, API Gateway's role."""
    names = function_names(stage)
    reservations = [Step(f"read {name}'s reserved concurrency (none before its first deploy)",
                         ["aws", "lambda", "get-function-concurrency", "--region", region, "--function-name", name,
                          "--output", "json"], capture=f"Reserved:{name}", missing_ok="ResourceNotFoundException")
                    for name in names.values()]
    reservations[-1].check = "concurrency"
    return [
        Step("read the account's Lambda concurrency",
             ["aws", "lambda", "get-account-settings", "--region", region, "--query", "AccountLimit",
              "--output", "json"], capture="AccountLimit"),
        *reservations,
        Step("check API Gateway has its CloudWatch Logs role (one per account and region)",
             ["aws", "apigateway", "get-account", "--region", region, "--query", "cloudwatchRoleArn",
              "--output", "text"], capture="ApiGatewayLoggingRole", check="api_gateway_role"),
        Step("check the artefact bucket exists", ["aws", "s3api", "head-bucket", "--region", region,
                                                  "--bucket", bucket]),
    ]


def plan(*, stage: str, region: str, bucket: str, version: str, build: Path, alarm_email: str | None,
         throttle_rate: int, throttle_burst: int | None, rollback: str | None) -> list[Step]:
    """The AWS CLI commands of a deploy (or of a rollback to `rollback`), in order."""
    burst = stage_burst(stage, throttle_rate, throttle_burst)
    parameters = [f"ApiThrottleRate={throttle_rate}", f"ApiThrottleBurst={burst}"]
    if alarm_email:
        parameters.append(f"AlarmEmail={alarm_email}")
    checks = account_checks(stage, region, bucket)
    if rollback:
        template = str(build / f"rollback-{rollback}.json")
        prefix = artifact_prefix(stage, rollback)
        return [
            *checks,
            Step("fetch the template deployed as " + rollback,
                 ["aws", "s3", "cp", f"s3://{bucket}/{prefix}/packaged.json", template, "--region", region]),
            # No parameter overrides: the stack keeps the alarm address and throttle it has.
            *deploy_steps(stage=stage, region=region, template=template, parameters=[], bucket=bucket,
                          prefix=prefix),
        ]
    packaged = str(build / "packaged.json")
    prefix = artifact_prefix(stage, version)
    names = function_names(stage)
    return [
        *checks,
        # Only the names of those missing are printed (InvalidParameters), never a value.
        Step("check the secrets the functions name are stored",
             ["aws", "ssm", "get-parameters", "--region", region, "--names", *named_parameters(build, stage),
              "--query", "InvalidParameters", "--output", "json"], capture="MissingParameters", check="parameters"),
        Step("read Neon's direct connection string",
             ["aws", "ssm", "get-parameter", "--region", region, "--name", direct_database_parameter(stage),
              "--with-decryption", "--query", "Parameter.Value", "--output", "text"], capture="DirectDatabaseUrl"),
        Step("migrate before the code that needs it (expand)", [sys.executable, "-m", "chalicelib.migrate"],
             env_from={"DATABASE_URL": "DirectDatabaseUrl"}),
        Step("upload the code and write the template that points at it",
             ["aws", "cloudformation", "package", "--region", region, "--template-file", str(build / "sam.json"),
              "--s3-bucket", bucket, "--s3-prefix", prefix, "--use-json", "--output-template-file", packaged]),
        Step("keep the template for rollbacks",
             ["aws", "s3", "cp", packaged, f"s3://{bucket}/{prefix}/packaged.json", "--region", region]),
        *deploy_steps(stage=stage, region=region, template=packaged, parameters=parameters, bucket=bucket,
                      prefix=prefix),
        invoke_step("check the deployed migrate function (fails on FunctionError)", names["Migrate"], region,
                    build / "migrate-response.json", capture="MigrateInvoke",
                    timeout_seconds=function_timeout(stage, "Migrate")),
        # The first heartbeat arms the missed-sweep alarm (which stays quiet until it has seen one) and proves the
        # sweep reaches the database and storage with its own, narrower permissions.
        invoke_step("run the sweep once (fails on FunctionError)", names["ExpireAbandoned"], region,
                    build / "sweep-response.json", capture="SweepInvoke",
                    timeout_seconds=function_timeout(stage, "ExpireAbandoned")),
    ]


def check_function_error(output: str, response_file: Path | None = None, function: str = "the migrate function") -> None:
    """`aws lambda invoke` exits 0 even when the function raised: its output's FunctionError says so."""
    result = json.loads(output)
    if result.get("FunctionError") or result.get("StatusCode") != 200:
        detail = response_file.read_text()[:2000] if response_file and response_file.exists() else ""
        raise DeployError(f"{function} failed ({result.get('FunctionError')}): {detail}")


def check_health(api_url: str, version: str | None, timeout: float = 15) -> dict:
    """GET <ApiUrl>api/health: 200 and the version just deployed (or rolled back to)."""
    url = api_url.rstrip("/") + "/api/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except Exception as exc:
        raise DeployError(f"{url}: {exc}") from None
    if version and body.get("version") != version:
        raise DeployError(f"{url} answers version {body.get('version')!r}, expected {version!r}")
    return body


def run_step(step: Step, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one step's command with the pinned CLI; a refusal because the function is busy is tried again."""
    for path, content in step.writes.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)
    argv = [cli(), *step.argv[1:]] if step.argv[0] == "aws" else step.argv
    watch = bool(step.missing_ok or step.busy_retry_seconds)
    deadline = time.monotonic() + step.busy_retry_seconds
    while True:
        result = subprocess.run(argv, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE if step.capture else None,
                                stderr=subprocess.PIPE if watch else None)
        error = result.stderr or ""
        if result.returncode != 0 and step.missing_ok and step.missing_ok in error:
            return subprocess.CompletedProcess(argv, 0, "null", "")
        if error:
            sys.stderr.write(error)
        if (result.returncode != 0 and step.busy_retry_seconds and BUSY in error
                and time.monotonic() + BUSY_RETRY_DELAY_SECONDS < deadline):
            print(f"  refused ({BUSY}): nothing ran; a run in progress holds the function's concurrency. "
                  f"Trying again in {BUSY_RETRY_DELAY_SECONDS:g} s", flush=True)
            time.sleep(BUSY_RETRY_DELAY_SECONDS)
            continue
        return result


def execute(steps: list[Step], *, stage: str = "prod", region: str | None = None) -> dict[str, str]:
    """Run the plan, stopping at the first failure; secrets fetched by a step go only into the next's environment."""
    outputs: dict[str, str] = {}
    for step in steps:
        print(f"# {step.name}\n+ {step.shown()}", flush=True)
        env = {**os.environ, **step.env, **{var: outputs[source] for var, source in step.env_from.items()}}
        result = run_step(step, env)
        if result.returncode != 0:
            hint = ""
            if step.check == "function_error" and "Read timeout" in (result.stderr or ""):
                hint = (" (no answer within the read timeout; the invocation was sent once and may still be "
                        "running: read its log before running it again)")
            raise DeployError(f"step failed ({step.name}): exit {result.returncode}{hint}")
        if step.capture:
            outputs[step.capture] = result.stdout.strip()
        if step.check == "parameters":
            check_parameters_exist(outputs[step.capture])
        if step.check == "concurrency":
            check_account_concurrency(outputs["AccountLimit"],
                                      [value for key, value in outputs.items() if key.startswith("Reserved:")], stage)
        if step.check == "api_gateway_role":
            check_api_gateway_role(outputs[step.capture], region or step.argv[step.argv.index("--region") + 1])
        if step.check == "function_error":
            response = Path(step.argv[-1])
            function = step.argv[step.argv.index("--function-name") + 1]
            check_function_error(outputs[step.capture], response, function)
            print(outputs[step.capture])
    return outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--region", required=True)
    parser.add_argument("--artifact-bucket", required=True, help="S3 bucket for code zips and deployed templates")
    parser.add_argument("--alarm-email", help="subscribe this address to the alarm topic")
    parser.add_argument("--throttle-rate", type=int, default=20, help="API stage requests per second")
    parser.add_argument("--throttle-burst", type=int,
                        help="API stage burst (default and most: the API function's reserved concurrency)")
    parser.add_argument("--allowed-origins", help="comma-separated origins for this build, instead of the config's")
    parser.add_argument("--rollback", metavar="VERSION", help="redeploy the template deployed as VERSION")
    parser.add_argument("--build-dir", type=Path, help="where to package (default build/<stage>)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and check everything; call nothing")
    args = parser.parse_args(argv)
    build = args.build_dir or ROOT / "build" / args.stage
    try:
        check_parameters(stage=args.stage, region=args.region, bucket=args.artifact_bucket,
                         alarm_email=args.alarm_email, throttle_rate=args.throttle_rate,
                         throttle_burst=args.throttle_burst, rollback=args.rollback)
        version = None
        if not args.rollback:
            package(args.stage, allowed_origins_override=args.allowed_origins, out=build)
            version = check_build(build, args.stage)["version"]
            if version.endswith("-dirty") and not args.dry_run:
                raise DeployError(f"the working tree has uncommitted changes ({version}): commit, then deploy")
        else:
            build.mkdir(parents=True, exist_ok=True)
        steps = plan(stage=args.stage, region=args.region, bucket=args.artifact_bucket, version=version,
                     build=build, alarm_email=args.alarm_email, throttle_rate=args.throttle_rate,
                     throttle_burst=args.throttle_burst, rollback=args.rollback)
        expected = args.rollback or version
        if args.dry_run:
            print(f"dry run: stage {args.stage}, stack {stack_name(args.stage)}, region {args.region}, "
                  f"version {expected}, AWS CLI {cli()}; the plan:")
            for step in steps:
                print(f"# {step.name}\n+ {step.shown()}")
            print(f"# check the health route names the version\n+ curl -fsS <ApiUrl>api/health  # version {expected}")
            return 0
        outputs = execute(steps, stage=args.stage, region=args.region)
        body = check_health(outputs["ApiUrl"], expected)
        print(f"deployed {expected} to {outputs['ApiUrl']}: {json.dumps(body)}")
        if args.alarm_email:
            print(f"alarms go to {args.alarm_email} once the subscription is confirmed: on a first deploy, open the "
                  "e-mail AWS sent there and confirm it (until then no alarm reaches anyone)")
        return 0
    except (DeployError, PackageRefused) as exc:
        print(f"deploy stopped: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
