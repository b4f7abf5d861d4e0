"""The one deploy path: package, migrate first, deploy the stack, check the migrate function and the health route.

    python -m ops.deploy --stage prod --region eu-central-1 --artifact-bucket BUCKET [--dry-run]
    python -m ops.deploy --stage prod --region eu-central-1 --artifact-bucket BUCKET --rollback VERSION

Every AWS call is an AWS CLI command, printed before it runs; `--dry-run` prints the same plan, builds and checks
the template and the parameters, and calls nothing. Each deployed template is kept in the artefact bucket under
its version, which is what a rollback redeploys (its code zip is already there, named by its hash).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ops.package import APP_NAME, ROOT, PackageRefused, function_names, package, stage_config

# Lambda keeps this much of the account's concurrency unreserved: reservations must leave it free.
UNRESERVED_MINIMUM = 100

REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SECRET_PLACEHOLDER = "<hidden>"


class DeployError(RuntimeError):
    """A step failed or a parameter is wrong; the message says which."""


@dataclass
class Step:
    """One command of the plan. `env_from` names earlier outputs passed in the environment, never printed."""

    name: str
    argv: list[str]
    capture: str | None = None
    env_from: dict[str, str] = field(default_factory=dict)
    check: str | None = None

    def shown(self) -> str:
        prefix = " ".join(f"{var}=<{source}>" for var, source in self.env_from.items())
        return (prefix + " " if prefix else "") + shlex.join(self.argv)


def stack_name(stage: str) -> str:
    return f"{APP_NAME}-{stage}"


def direct_database_parameter(stage: str) -> str:
    """SSM parameter with Neon's direct (non-pooler) connection string, used only by migrations."""
    return f"/3d-ultra/{stage}/database-url-direct"


def artifact_prefix(stage: str, version: str) -> str:
    return f"{APP_NAME}/{stage}/{version}"


def check_parameters(*, stage: str, region: str, bucket: str, alarm_email: str | None, throttle_rate: int,
                     throttle_burst: int, rollback: str | None = None) -> None:
    """Refuse a deploy whose parameters cannot be right, before anything is called."""
    problems = []
    try:
        stage_config(stage)
    except KeyError:
        problems.append(f"no stage {stage!r} in .chalice/config.json")
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
    if throttle_rate < 1 or throttle_burst < throttle_rate:
        problems.append("the stage throttle needs a rate of at least 1 and a burst no smaller than the rate")
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


def check_account_concurrency(output: str, stage: str) -> None:
    """The account's concurrency quota must hold the stage's reservations plus the unreserved minimum, or
    CloudFormation fails the functions mid-deploy (new accounts often have 10)."""
    limit = json.loads(output)["AccountLimit"]["ConcurrentExecutions"]
    needed = reserved_concurrency(stage) + UNRESERVED_MINIMUM
    if limit < needed:
        raise DeployError(
            f"the account's Lambda concurrency quota is {limit}; the functions reserve {reserved_concurrency(stage)} "
            f"and Lambda keeps {UNRESERVED_MINIMUM} unreserved, so it must be at least {needed}: ask for an increase "
            "(Service Quotas, \"Lambda concurrent executions\") before deploying")


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
                          " store them (see the README's Deploy section) before deploying")


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


def invoke_step(name: str, function: str, region: str, response: Path, *, capture: str) -> Step:
    """Invoke a function with `{}` and keep its answer in `response`; the step fails on a FunctionError."""
    return Step(name, ["aws", "lambda", "invoke", "--region", region, "--function-name", function,
                       "--cli-binary-format", "raw-in-base64-out", "--payload", "{}", str(response)],
                capture=capture, check="function_error")


def plan(*, stage: str, region: str, bucket: str, version: str, build: Path, alarm_email: str | None,
         throttle_rate: int, throttle_burst: int, rollback: str | None) -> list[Step]:
    """The AWS CLI commands of a deploy (or of a rollback to `rollback`), in order."""
    parameters = [f"ApiThrottleRate={throttle_rate}", f"ApiThrottleBurst={throttle_burst}"]
    if alarm_email:
        parameters.append(f"AlarmEmail={alarm_email}")
    checks = [
        Step("check the account's Lambda concurrency quota",
             ["aws", "lambda", "get-account-settings", "--region", region, "--output", "json"],
             capture="AccountSettings", check="concurrency"),
        Step("check the artefact bucket exists", ["aws", "s3api", "head-bucket", "--region", region,
                                                  "--bucket", bucket]),
    ]
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
                    build / "migrate-response.json", capture="MigrateInvoke"),
        # The first heartbeat arms the missed-sweep alarm (which stays quiet until it has seen one) and proves the
        # sweep reaches the database and storage with its own, narrower permissions.
        invoke_step("run the sweep once (fails on FunctionError)", names["ExpireAbandoned"], region,
                    build / "sweep-response.json", capture="SweepInvoke"),
    ]


def check_function_error(output: str, response_file: Path | None = None, function: str = "the migrate function") -> None:
    """`aws lambda invoke` exits 0 even when the function raised: its output's FunctionError says so."""
    result = json.loads(output)
    if result.get("FunctionError") or result.get("StatusCode") != 200:
        detail = response_file.read_text()[:2000] if response_file and response_file.exists() else ""
        raise DeployError(f"{function} failed ({result.get('FunctionError')}): {detail}")


def check_health(api_url: str, version: str | None, timeout: float = 15) -> dict:
    """GET <ApiUrl>api/health: 200 and, for a deploy, the version just deployed."""
    url = api_url.rstrip("/") + "/api/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except Exception as exc:
        raise DeployError(f"{url}: {exc}") from None
    if version and body.get("version") != version:
        raise DeployError(f"{url} answers version {body.get('version')!r}, expected {version!r}")
    return body


def execute(steps: list[Step], *, stage: str = "prod") -> dict[str, str]:
    """Run the plan, stopping at the first failure; secrets fetched by a step go only into the next's environment."""
    outputs: dict[str, str] = {}
    for step in steps:
        print(f"# {step.name}\n+ {step.shown()}", flush=True)
        env = {**os.environ, **{var: outputs[source] for var, source in step.env_from.items()}}
        result = subprocess.run(step.argv, cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE if step.capture else None)
        if result.returncode != 0:
            raise DeployError(f"step failed ({step.name}): exit {result.returncode}")
        if step.capture:
            outputs[step.capture] = result.stdout.strip()
        if step.check == "parameters":
            check_parameters_exist(outputs[step.capture])
        if step.check == "concurrency":
            check_account_concurrency(outputs[step.capture], stage)
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
    parser.add_argument("--throttle-rate", type=int, default=50, help="API stage requests per second")
    parser.add_argument("--throttle-burst", type=int, default=100, help="API stage burst")
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
        if args.dry_run:
            print(f"dry run: stage {args.stage}, stack {stack_name(args.stage)}, region {args.region}, "
                  f"version {args.rollback or version}; the plan:")
            for step in steps:
                print(f"# {step.name}\n+ {step.shown()}")
            print("# check the health route names the version\n+ curl -fsS <ApiUrl>api/health")
            return 0
        outputs = execute(steps, stage=args.stage)
        body = check_health(outputs["ApiUrl"], version)
        print(f"deployed {args.rollback or version} to {outputs['ApiUrl']}: {json.dumps(body)}")
        if args.alarm_email:
            print(f"alarms go to {args.alarm_email} once the subscription is confirmed: on a first deploy, open the "
                  "e-mail AWS sent there and confirm it (until then no alarm reaches anyone)")
        return 0
    except (DeployError, PackageRefused) as exc:
        print(f"deploy stopped: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
