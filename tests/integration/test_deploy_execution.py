"""The deploy plan, the rollback and `make sweep` executed with the real, pinned AWS CLI (`awscli` v1 beside the
interpreter) for every step, against local servers that answer as AWS does: moto's server for S3, SSM and API
Gateway's account settings; `tests/aws_endpoints.py` for Lambda (account settings, reserved concurrency, Invoke:
counting invocations, slower than a read timeout when asked) and CloudFormation (change sets, stacks). Nothing
stands in for the CLI, so a flag it rejects, a retry it makes or an answer it cannot read fails a test here.
"""

import itertools
import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

import ops.deploy
from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.migrate import available_migrations
from devstack.ssm import CREDENTIALS, REGION, MotoSsm
from ops.deploy import (SEND_ONCE, DeployError, Step, artifact_prefix, check_health, cli, deploy_steps, execute,
                        invoke_step, plan)
from ops.deploy import reserved_concurrency
from ops.package import CONFIG_NAMES, function_names, package, stage_config
from tests.aws_endpoints import FakeAws, Stack

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "3d-ultra-artifacts"
STORED_SECRETS = [f"/3d-ultra/prod/{name}" for name in ("database-url", "r2-endpoint-url", "r2-access-key-id",
                                                        "r2-secret-access-key", "posthog-api-key", "digest-secret",
                                                        "processing-api-token")]
REAL_AWS = Path(sys.executable).parent / "aws"
NAMES = function_names("prod")
MIGRATE, SWEEP = NAMES["Migrate"], NAMES["ExpireAbandoned"]
RESERVED = reserved_concurrency("prod")
LOGGING_ROLE = "arn:aws:iam::123456789012:role/apigateway-cloudwatch"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoSsm(log_file=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A real production build (chalice package + the operations resources)."""
    return package("prod", allow_placeholder_origins=True, out=tmp_path_factory.mktemp("build"))


def client(moto, service, region=REGION):
    return boto3.client(service, endpoint_url=moto.endpoint_url, region_name=region,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def read_object(moto, bucket, key):
    return client(moto, "s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()


@pytest.fixture
def fake(moto):
    """Lambda and CloudFormation as the CLI sees them; CloudFormation reads templates from moto's S3."""
    endpoints = FakeAws(region=REGION, fetch_template=lambda bucket, key: read_object(moto, bucket, key)).start()
    yield endpoints
    endpoints.stop()


@pytest.fixture
def aws(tmp_path, monkeypatch, moto, fake, db, stack_env):
    """The pinned CLI pointed at moto and the fake endpoints; an empty direct database; the artefact bucket, the
    SSM secrets and API Gateway's logging role, as an operator leaves them before a first deploy."""
    name = "deploy_direct"
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    db.run(f"CREATE DATABASE {name}")
    direct_url = stack_env["DATABASE_URL"].replace("/uploads?", f"/{name}?")
    for variable, value in {"AWS_ENDPOINT_URL": moto.endpoint_url, **fake.env(), "AWS_DEFAULT_REGION": REGION,
                            **CREDENTIALS, "AWS_CONFIG_FILE": str(tmp_path / "none"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(variable, value)
    for variable in ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    s3 = client(moto, "s3")
    if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # Every parameter the functions name (their values are never read here), and the direct URL the deploy uses.
    moto.put_secrets({**{name: "stored" for name in STORED_SECRETS}, "/3d-ultra/prod/database-url-direct": direct_url})
    client(moto, "apigateway").update_account(patchOperations=[
        {"op": "replace", "path": "/cloudwatchRoleArn", "value": LOGGING_ROLE}])

    def schema_at_deploy(stack):
        fake.operations.append(("database", "migrations applied when the stack changed",
                                len(applied_migrations(direct_url))))

    fake.on_execute = schema_at_deploy
    yield tmp_path, direct_url
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def health_server(fake):
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": "ok", "checks": {}, "version": "v9.9.9"}).encode()
            self.send_response(200 if self.path == "/api/api/health" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/"
    fake.outputs["ApiUrl"] = url
    yield url
    server.shutdown()


def steps_for(build, **overrides):
    arguments = dict(stage="prod", region=REGION, bucket=BUCKET, version="v9.9.9", build=build,
                     alarm_email="oncall@3d-ultra.com", throttle_rate=20, throttle_burst=None, rollback=None)
    return plan(**{**arguments, **overrides})


def applied_migrations(direct_url):
    direct = Database(DatabaseSettings.from_url(direct_url), application_name="tests")
    try:
        if not direct.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
            return []
        return [row[0] for row in direct.run("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        direct.close()


def printed_commands(out):
    """Each printed step as its leading environment assignments and next three words (`aws SERVICE COMMAND`)."""
    commands = []
    for line in out.splitlines():
        if line.startswith("+ "):
            words = line[2:].split()
            env = list(itertools.takewhile(lambda word: re.match(r"^[A-Z_]+=", word), words))
            commands.append(" ".join(words[:len(env) + 3]))
    return commands


def test_a_deploy_runs_every_step_with_the_pinned_cli_migrates_first_and_invokes_each_function_once(
        aws, build, moto, fake, health_server, capsys):
    log_dir, direct_url = aws
    assert cli() == str(REAL_AWS)

    outputs = execute(steps_for(build))
    body = check_health(outputs["ApiUrl"], "v9.9.9")

    printed = capsys.readouterr().out
    once = " ".join(f"{k}={v}" for k, v in SEND_ONCE.items())
    assert printed_commands(printed) == [
        "aws lambda get-account-settings", *["aws lambda get-function-concurrency"] * len(NAMES),
        "aws apigateway get-account",
        "aws s3api head-bucket", "aws ssm get-parameters", "aws ssm get-parameter",
        f"DATABASE_URL=<DirectDatabaseUrl> {sys.executable} -m chalicelib.migrate", "aws cloudformation package",
        "aws s3 cp", "aws cloudformation deploy", "aws cloudformation describe-stacks",
        f"{once} aws lambda invoke", f"{once} aws lambda invoke"]
    # What the fake Lambda and CloudFormation served, in order: the CLI's own calls, and when the schema changed.
    assert [op[:2] for op in fake.operations] == [
        ("lambda", "GetAccountSettings"), *[("lambda", "GetFunctionConcurrency")] * len(NAMES),
        ("cloudformation", "DescribeStacks"), ("cloudformation", "CreateChangeSet"),
        ("cloudformation", "DescribeChangeSet"), ("cloudformation", "ExecuteChangeSet"),
        ("database", "migrations applied when the stack changed"),
        ("cloudformation", "DescribeStacks"), ("cloudformation", "DescribeStacks"),
        ("lambda", "Invoke"), ("lambda", "Invoke")]
    [schema] = [op for op in fake.operations if op[0] == "database"]
    assert schema[2] == len(available_migrations())
    assert applied_migrations(direct_url) == [version for version, _ in available_migrations()]
    # Each function was invoked exactly once, with the bytes `{}` (CLI v1 sends the file's bytes as they are).
    assert (fake.invocations[MIGRATE], fake.invocations[SWEEP]) == ([b"{}"], [b"{}"])
    # CloudFormation got the template the CLI uploaded to S3, the one kept for rollbacks, and the parameters.
    [change_set] = fake.change_sets.values()
    prefix = artifact_prefix("prod", "v9.9.9")
    kept = read_object(moto, BUCKET, f"{prefix}/packaged.json")
    assert json.loads(change_set["template"]) == json.loads(kept)
    assert change_set["templateUrl"].split(f"/{BUCKET}/")[1].startswith(f"{prefix}/")
    assert (change_set["type"], change_set["capabilities"], change_set["parameters"]) == (
        "CREATE", ["CAPABILITY_IAM"],
        {"ApiThrottleRate": "20", "ApiThrottleBurst": "20", "AlarmEmail": "oncall@3d-ultra.com"})
    code_uri = json.loads(kept)["Resources"]["APIHandler"]["Properties"]["CodeUri"]
    keys = {o["Key"]: o["Size"] for o in client(moto, "s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    assert keys[code_uri.removeprefix(f"s3://{BUCKET}/")] == (build / "deployment.zip").stat().st_size
    assert body["version"] == "v9.9.9"
    assert direct_url not in printed and "DATABASE_URL=<DirectDatabaseUrl>" in printed


def test_an_account_without_the_unreserved_concurrency_the_reservations_need_stops_before_migrating(aws, build,
                                                                                                   fake):
    log_dir, direct_url = aws
    fake.account = {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 110}

    with pytest.raises(DeployError, match=rf"the account has 110 of its 1000 concurrent executions unreserved; the "
                                          rf"functions reserve 0 now and {RESERVED} once deployed, which would leave "
                                          rf"{110 - RESERVED}"):
        execute(steps_for(build))
    assert fake.names() == ["GetAccountSettings", *["GetFunctionConcurrency"] * len(NAMES)]
    assert applied_migrations(direct_url) == []


def test_a_redeploy_counts_the_reservations_the_functions_already_hold(aws, build, fake, health_server):
    # 100 unreserved: what matters is what stays unreserved once the functions reserve theirs, and they already
    # hold them (a function deployed without a reservation answers {}).
    fake.account = {"ConcurrentExecutions": 100 + RESERVED, "UnreservedConcurrentExecutions": 100}
    for logical_id, name in NAMES.items():
        fake.function(name).reserved = stage_config("prod")["lambda_functions"][CONFIG_NAMES[logical_id]].get(
            "reserved_concurrency") or 0

    execute(steps_for(build)[:1 + len(NAMES)])


def test_a_missing_artefact_bucket_stops_the_deploy_before_migrating(aws, build, fake, capfd):
    log_dir, direct_url = aws

    with pytest.raises(DeployError, match=r"step failed \(check the artefact bucket exists\): exit 255"):
        execute(steps_for(build, bucket="no-such-artefact-bucket"))
    assert "Not Found" in capfd.readouterr().err
    assert applied_migrations(direct_url) == []


def test_a_region_whose_api_gateway_has_no_logging_role_stops_the_deploy_before_migrating(aws, build, moto, fake):
    log_dir, direct_url = aws
    with pytest.raises(DeployError, match=r"API Gateway has no CloudWatch Logs role in eu-west-1 .* set one once as "
                                          r"docs/deploy.md's \"From zero to a deployed stage\" says"):
        execute(steps_for(build, region="eu-west-1"))
    assert applied_migrations(direct_url) == []
    assert "CreateChangeSet" not in fake.names()


def test_a_secret_the_new_functions_need_but_nobody_stored_stops_the_deploy_before_migrating(aws, build, moto, fake):
    # The release that introduced the digest secret needs `/3d-ultra/prod/digest-secret`: deployed without it, the
    # migration would have run and then every request of the new code failed at start-up.
    log_dir, direct_url = aws
    client(moto, "ssm").delete_parameter(Name="/3d-ultra/prod/digest-secret")

    with pytest.raises(DeployError) as caught:
        execute(steps_for(build))

    assert str(caught.value) == ("the functions name SSM parameters that do not exist: /3d-ultra/prod/digest-secret;"
                                 " store them (see docs/deploy.md) before deploying")
    assert applied_migrations(direct_url) == []
    assert "CreateChangeSet" not in fake.names()


@pytest.mark.parametrize("function", [MIGRATE, SWEEP])
def test_a_function_that_raised_stops_the_deploy_although_the_cli_exited_0(aws, build, fake, health_server, function):
    fake.function(function).fails = True

    with pytest.raises(DeployError, match=rf'{function} failed \(Unhandled\): .*"errorMessage": "boom"'):
        execute(steps_for(build))
    assert fake.invocation_count(function) == 1


def test_the_real_cli_refuses_our_template_inline_so_the_plan_passes_a_bucket(aws, build):
    log_dir, _ = aws
    template = log_dir / "packaged.json"
    subprocess.run([str(REAL_AWS), "cloudformation", "package", "--template-file", str(build / "sam.json"),
                    "--s3-bucket", BUCKET, "--s3-prefix", "cli-rules", "--use-json",
                    "--output-template-file", str(template)], check=True, capture_output=True)
    assert template.stat().st_size > 51_200
    [deploy] = deploy_steps(stage="prod", region=REGION, template=str(template), parameters=[], bucket=BUCKET,
                            prefix="cli-rules/v1")[:1]
    inline = [arg for i, arg in enumerate(deploy.argv) if arg not in ("--s3-bucket", "--s3-prefix")
              and deploy.argv[i - 1] not in ("--s3-bucket", "--s3-prefix")]

    without = subprocess.run([str(REAL_AWS), *inline[1:]], capture_output=True, text=True)

    assert without.returncode == 255
    assert "Templates with a size greater than 51,200 bytes must be deployed via an S3 Bucket" in without.stderr


def test_a_rollback_fetches_the_kept_template_updates_the_stack_and_does_not_migrate(aws, build, moto, fake,
                                                                                    health_server):
    log_dir, direct_url = aws
    prefix = artifact_prefix("prod", "v1.4.0")
    kept = {"Parameters": {"ApiThrottleRate": {"Type": "Number"}, "AlarmEmail": {"Type": "String"}}, "Resources": {}}
    client(moto, "s3").put_object(Bucket=BUCKET, Key=f"{prefix}/packaged.json", Body=json.dumps(kept).encode())
    fake.stacks["three-d-ultra-upload-prod"] = fake_stack = Stack(
        "three-d-ultra-upload-prod", "UPDATE_COMPLETE", {"ApiThrottleRate": "20", "AlarmEmail": "oncall@3d-ultra.com"},
        template_parameters=["AlarmEmail", "ApiThrottleRate"])

    outputs = execute(steps_for(build, rollback="v1.4.0"))

    assert fake.names("cloudformation") == ["DescribeStacks", "GetTemplateSummary", "CreateChangeSet",
                                            "DescribeChangeSet", "ExecuteChangeSet", "DescribeStacks",
                                            "DescribeStacks"]
    [change_set] = fake.change_sets.values()
    assert (change_set["type"], json.loads(change_set["template"])) == ("UPDATE", kept)
    # No parameter overrides: the stack keeps its alarm address and throttle.
    assert fake_stack.parameters == {"ApiThrottleRate": "20", "AlarmEmail": "oncall@3d-ultra.com"}
    assert ("database", "migrations applied when the stack changed", 0) in fake.operations
    assert applied_migrations(direct_url) == []
    assert fake.invocations == {}
    assert json.loads((build / "rollback-v1.4.0.json").read_text()) == kept
    assert outputs["ApiUrl"] == health_server


@pytest.mark.parametrize("fails, code", [(False, 0), (True, 1)])
def test_make_sweep_invokes_the_sweep_once_with_an_empty_event_and_fails_when_it_failed(aws, fake, fails, code):
    fake.function(SWEEP).fails = fails

    result = subprocess.run([sys.executable, "-m", "ops.sweep", "--stage", "prod", "--region", REGION],
                            cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == code, result.stderr
    assert fake.invocations == {SWEEP: [b"{}"]}
    assert (f"+ AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard aws lambda invoke --region {REGION} --function-name "
            f"{SWEEP} --payload fileb://") in result.stdout
    assert "--cli-read-timeout 360 --cli-connect-timeout 10" in result.stdout
    if fails:
        assert f"{SWEEP} failed (Unhandled)" in result.stderr
    else:
        assert json.loads(result.stdout.splitlines()[-1]) == {"expired": 0}


def slow_invoke(tmp_path, *, read_timeout):
    """The plan's invoke step for a function whose timeout makes the CLI wait `read_timeout` seconds."""
    return invoke_step("invoke a slow function", SWEEP, REGION, tmp_path / "slow-response.json",
                       capture="Slow", timeout_seconds=read_timeout - ops.deploy.INVOKE_READ_MARGIN_SECONDS)


def test_a_function_slower_than_the_read_timeout_is_invoked_once_and_the_step_says_it_may_still_run(
        aws, fake, tmp_path, capfd):
    fake.function(SWEEP).seconds = 4
    step = slow_invoke(tmp_path, read_timeout=2)
    assert step.argv[step.argv.index("--cli-read-timeout") + 1] == "2"

    with pytest.raises(DeployError, match=r"exit 255 \(no answer within the read timeout; the invocation was sent "
                                          r"once and may still be running"):
        execute([step])

    assert "Read timeout on endpoint URL" in capfd.readouterr().err
    assert fake.invocation_count(SWEEP) == 1


def test_the_cli_waits_as_long_as_the_function_may_run_and_sends_it_once(aws, fake, tmp_path):
    fake.function(SWEEP).seconds = 4
    step = slow_invoke(tmp_path, read_timeout=7)

    execute([step])

    assert fake.invocation_count(SWEEP) == 1
    assert fake.invocations == {SWEEP: [b"{}"]}


def test_without_send_once_the_cli_would_have_invoked_a_slow_function_five_times(aws, fake, tmp_path):
    # The control: the same command as the CLI runs it by default (legacy retries, up to 5 attempts) re-sends the
    # invocation each time its read timeout expires. The endpoint counts what really arrives.
    fake.function(SWEEP).seconds = 1.5
    step = slow_invoke(tmp_path, read_timeout=1)
    Path(tmp_path / "empty-event.json").write_text("{}")

    result = subprocess.run([str(REAL_AWS), *step.argv[1:]], capture_output=True, text=True, timeout=120)

    assert result.returncode == 255 and "Read timeout" in result.stderr
    assert fake.invocation_count(SWEEP) == 5


def test_a_function_busy_with_a_run_in_progress_is_tried_again_and_runs_once(aws, fake, tmp_path, monkeypatch,
                                                                             capsys):
    # Reserved concurrency 1: while the hourly sweep runs, Lambda refuses another invocation (429, nothing ran).
    monkeypatch.setattr(ops.deploy, "BUSY_RETRY_DELAY_SECONDS", 0.2)
    fake.function(SWEEP).busy = 2

    execute([slow_invoke(tmp_path, read_timeout=30)])

    assert (fake.refused[SWEEP], fake.invocation_count(SWEEP)) == (2, 1)
    assert capsys.readouterr().out.count("refused (TooManyRequestsException): nothing ran") == 2


def test_an_expected_not_found_answer_is_read_as_none_and_others_still_fail(aws, fake):
    missing = Step("read a reservation", ["aws", "lambda", "get-function-concurrency", "--region", REGION,
                                          "--function-name", "never-deployed", "--output", "json"],
                   capture="Reserved", missing_ok="ResourceNotFoundException")
    wrong = Step("a call that fails otherwise", ["aws", "lambda", "get-function-concurrency", "--region", REGION,
                                                 "--function-name", "never-deployed", "--output", "json"],
                 capture="Wrong", missing_ok="SomethingElse")

    assert execute([missing]) == {"Reserved": "null"}
    with pytest.raises(DeployError, match="exit 255"):
        execute([wrong])


def test_a_health_check_that_answers_another_version_fails(health_server):
    with pytest.raises(DeployError, match="answers version 'v9.9.9', expected 'v10.0.0'"):
        check_health(health_server, "v10.0.0")


def test_the_environment_of_an_invocation_only_sends_once_for_that_call(aws):
    # SEND_ONCE is set for the invoke steps alone: every other call keeps the CLI's retries.
    steps = steps_for(Path("/nonexistent"), rollback="v1")
    assert all(not step.env for step in steps)
    assert invoke_step("x", SWEEP, REGION, Path("/tmp/r.json"), capture="X", timeout_seconds=300).env == SEND_ONCE
    assert "AWS_MAX_ATTEMPTS" not in os.environ
