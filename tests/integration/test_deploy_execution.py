"""The deploy plan executed with the real AWS CLI (the pinned `awscli`) against moto's server for every call moto
serves: the account checks' bucket lookup, the SSM read of the direct database URL, `cloudformation package`'s
code upload, keeping and fetching templates in S3. What moto cannot serve is answered by a stand-in `aws` on PATH
that passes everything else to the real CLI:

- `lambda get-account-settings` (moto does not implement it),
- `cloudformation deploy` and `describe-stacks` (moto cannot create a SAM stack; the real CLI's own deploy rules,
  the 51,200-byte limit and the template upload, are run separately below, up to the CreateChangeSet call),
- `lambda invoke` (moto would need Docker to run a function).
"""

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.migrate import available_migrations
from devstack.ssm import CREDENTIALS, REGION, MotoSsm
from ops.deploy import DeployError, artifact_prefix, check_health, deploy_steps, execute, plan
from ops.package import package

BUCKET = "3d-ultra-artifacts"
STORED_SECRETS = [f"/3d-ultra/prod/{name}" for name in ("database-url", "r2-endpoint-url", "r2-access-key-id",
                                                        "r2-secret-access-key", "posthog-api-key", "digest-secret",
                                                        "processing-api-token")]
REAL_AWS = Path(sys.executable).parent / "aws"

STAND_IN = '''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["AWS_CALLS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["lambda", "get-account-settings"]:
    print(json.dumps({{"AccountLimit": {{"ConcurrentExecutions": int(os.environ["STAND_IN_CONCURRENCY"]),
                                        "UnreservedConcurrentExecutions": 1000}}}}))
elif args[:2] == ["cloudformation", "deploy"]:
    sys.path.insert(0, os.getcwd())
    from chalicelib.config import DatabaseSettings
    from chalicelib.db import Database
    db = Database(DatabaseSettings.from_url(os.environ["STAND_IN_DIRECT_URL"]))
    exists = db.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]
    applied = len(db.run("SELECT version FROM schema_migrations")) if exists else 0
    with open(os.environ["AWS_CALLS_LOG"], "a") as log:
        log.write(json.dumps(["schema at deploy", applied]) + "\\n")
    db.close()
elif args[:2] == ["cloudformation", "describe-stacks"]:
    print(os.environ["STAND_IN_API_URL"])
elif args[:2] == ["lambda", "invoke"]:
    failing = os.environ.get("STAND_IN_FAILING_FUNCTION")
    function = args[args.index("--function-name") + 1]
    open(args[-1], "w").write(json.dumps({{"errorMessage": "boom"}} if function == failing else {{"expired": 0}}))
    answer = {{"StatusCode": 200}}
    if function == failing:
        answer["FunctionError"] = "Unhandled"
    print(json.dumps(answer))
else:
    os.execv({real!r}, [{real!r}, *args])
'''


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


def s3(moto):
    return boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION,
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture
def aws(tmp_path, monkeypatch, moto, db, stack_env):
    """The AWS CLI on PATH, pointed at moto; an empty direct database; the artefact bucket; the SSM secret."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "aws"
    stand_in.write_text(STAND_IN.format(python=sys.executable, real=str(REAL_AWS)))
    stand_in.chmod(stand_in.stat().st_mode | stat.S_IEXEC)
    name = "deploy_direct"
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    db.run(f"CREATE DATABASE {name}")
    direct_url = stack_env["DATABASE_URL"].replace("/uploads?", f"/{name}?")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for variable, value in {"AWS_ENDPOINT_URL": moto.endpoint_url, "AWS_DEFAULT_REGION": REGION, **CREDENTIALS,
                            "AWS_CALLS_LOG": str(tmp_path / "aws.log"), "STAND_IN_DIRECT_URL": direct_url,
                            "STAND_IN_CONCURRENCY": "1000", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(variable, value)
    client = s3(moto)
    if BUCKET not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    # Every parameter the functions name (their values are never read here), and the direct URL the deploy uses.
    moto.put_secrets({**{name: "stored" for name in STORED_SECRETS}, "/3d-ultra/prod/database-url-direct": direct_url})
    yield tmp_path, direct_url
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def health_server(monkeypatch):
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
    monkeypatch.setenv("STAND_IN_API_URL", url)
    yield url
    server.shutdown()


def steps_for(build, **overrides):
    arguments = dict(stage="prod", region=REGION, bucket=BUCKET, version="v9.9.9", build=build, alarm_email=None,
                     throttle_rate=50, throttle_burst=100, rollback=None)
    return plan(**{**arguments, **overrides})


def calls(log_dir):
    return [json.loads(line)[:2] for line in (log_dir / "aws.log").read_text().splitlines()]


def applied_migrations(direct_url):
    direct = Database(DatabaseSettings.from_url(direct_url), application_name="tests")
    try:
        if not direct.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]:
            return []
        return [row[0] for row in direct.run("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        direct.close()


def test_a_deploy_checks_the_account_migrates_first_uploads_then_deploys_and_runs_the_sweep(
        aws, build, moto, health_server, capsys):
    log_dir, direct_url = aws
    outputs = execute(steps_for(build))
    body = check_health(outputs["ApiUrl"], "v9.9.9")

    assert calls(log_dir) == [["lambda", "get-account-settings"], ["s3api", "head-bucket"],
                              ["ssm", "get-parameters"], ["ssm", "get-parameter"], ["cloudformation", "package"],
                              ["s3", "cp"],
                              ["cloudformation", "deploy"], ["schema at deploy", len(available_migrations())],
                              ["cloudformation", "describe-stacks"], ["lambda", "invoke"], ["lambda", "invoke"]]
    assert applied_migrations(direct_url) == [version for version, _ in available_migrations()]
    # The real `cloudformation package` put the code zip and the template pointing at it into moto's S3.
    prefix = artifact_prefix("prod", "v9.9.9")
    keys = {o["Key"]: o["Size"] for o in s3(moto).list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]}
    kept = json.loads(s3(moto).get_object(Bucket=BUCKET, Key=f"{prefix}/packaged.json")["Body"].read())
    code_uri = kept["Resources"]["APIHandler"]["Properties"]["CodeUri"]
    assert code_uri.startswith(f"s3://{BUCKET}/{prefix}/")
    assert keys[code_uri.removeprefix(f"s3://{BUCKET}/")] == (build / "deployment.zip").stat().st_size
    assert body["version"] == "v9.9.9"
    printed = capsys.readouterr().out
    assert direct_url not in printed and "DATABASE_URL=<DirectDatabaseUrl>" in printed


def test_an_account_quota_below_the_reservations_stops_the_deploy_before_migrating(aws, build, monkeypatch):
    log_dir, direct_url = aws
    monkeypatch.setenv("STAND_IN_CONCURRENCY", "10")

    with pytest.raises(DeployError, match=r"quota is 10; the functions reserve 35 and Lambda keeps 100 unreserved, "
                                          r"so it must be at least 135"):
        execute(steps_for(build))
    assert calls(log_dir) == [["lambda", "get-account-settings"]]
    assert applied_migrations(direct_url) == []


def test_a_missing_artefact_bucket_stops_the_deploy_before_migrating(aws, build, capfd):
    log_dir, direct_url = aws

    with pytest.raises(DeployError, match=r"step failed \(check the artefact bucket exists\): exit 255"):
        execute(steps_for(build, bucket="no-such-artefact-bucket"))
    assert calls(log_dir) == [["lambda", "get-account-settings"], ["s3api", "head-bucket"]]
    assert "Not Found" in capfd.readouterr().err
    assert applied_migrations(direct_url) == []


def test_a_secret_the_new_functions_need_but_nobody_stored_stops_the_deploy_before_migrating(aws, build, moto):
    # The release that introduced the digest secret needs `/3d-ultra/prod/digest-secret`: deployed without it, the
    # migration would have run and then every request of the new code failed at start-up.
    log_dir, direct_url = aws
    ssm = boto3.client("ssm", endpoint_url=moto.endpoint_url, region_name=REGION,
                       aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
    ssm.delete_parameter(Name="/3d-ultra/prod/digest-secret")

    with pytest.raises(DeployError) as caught:
        execute(steps_for(build))

    assert str(caught.value) == ("the functions name SSM parameters that do not exist: /3d-ultra/prod/digest-secret;"
                                 " store them (see the README's Deploy section) before deploying")
    assert applied_migrations(direct_url) == []
    assert ["cloudformation", "deploy"] not in calls(log_dir)


def test_a_migrate_function_that_raised_stops_the_deploy_although_the_cli_exited_0(aws, build, health_server,
                                                                                   monkeypatch):
    monkeypatch.setenv("STAND_IN_FAILING_FUNCTION", "three-d-ultra-upload-prod-migrate")

    with pytest.raises(DeployError, match=r'three-d-ultra-upload-prod-migrate failed \(Unhandled\): '
                                          r'{"errorMessage": "boom"}'):
        execute(steps_for(build))


def test_a_sweep_that_raised_on_its_first_run_fails_the_deploy(aws, build, health_server, monkeypatch):
    monkeypatch.setenv("STAND_IN_FAILING_FUNCTION", "three-d-ultra-upload-prod-expire-abandoned")

    with pytest.raises(DeployError, match=r"three-d-ultra-upload-prod-expire-abandoned failed \(Unhandled\)"):
        execute(steps_for(build))


def test_the_real_cli_refuses_our_template_without_a_bucket_and_uploads_it_with_the_plans_arguments(aws, build,
                                                                                                   moto):
    log_dir, _ = aws
    template = log_dir / "packaged.json"
    subprocess.run([str(REAL_AWS), "cloudformation", "package", "--template-file", str(build / "sam.json"),
                    "--s3-bucket", BUCKET, "--s3-prefix", "cli-rules", "--use-json",
                    "--output-template-file", str(template)], check=True, capture_output=True)
    assert template.stat().st_size > 51_200
    base = [str(REAL_AWS), "cloudformation", "deploy", "--region", REGION, "--stack-name", "cli-rules",
            "--template-file", str(template), "--capabilities", "CAPABILITY_IAM"]

    without = subprocess.run(base, capture_output=True, text=True)
    assert without.returncode == 255
    assert "Templates with a size greater than 51,200 bytes must be deployed via an S3 Bucket" in without.stderr

    [deploy] = deploy_steps(stage="prod", region=REGION, template=str(template), parameters=[], bucket=BUCKET,
                            prefix="cli-rules/v1")[:1]
    with_bucket = subprocess.run([str(REAL_AWS), *deploy.argv[1:]], capture_output=True, text=True)
    uploaded = s3(moto).list_objects_v2(Bucket=BUCKET, Prefix="cli-rules/v1/")["Contents"]
    # The CLI accepted the arguments and uploaded the template; moto's CloudFormation is where it stops.
    assert [o["Key"].endswith(".template") for o in uploaded] == [True]
    assert "must be deployed via an S3 Bucket" not in with_bucket.stderr
    assert "CreateChangeSet" in with_bucket.stderr


def test_a_rollback_fetches_the_kept_template_and_deploys_it_without_migrating(aws, build, moto, health_server):
    log_dir, direct_url = aws
    prefix = artifact_prefix("prod", "v1.4.0")
    s3(moto).put_object(Bucket=BUCKET, Key=f"{prefix}/packaged.json", Body=b'{"Resources": {}}')

    outputs = execute(steps_for(build, rollback="v1.4.0"))

    assert calls(log_dir) == [["lambda", "get-account-settings"], ["s3api", "head-bucket"], ["s3", "cp"],
                              ["cloudformation", "deploy"], ["schema at deploy", 0],
                              ["cloudformation", "describe-stacks"]]
    assert applied_migrations(direct_url) == []
    assert (build / "rollback-v1.4.0.json").read_text() == '{"Resources": {}}'
    assert outputs["ApiUrl"] == health_server


@pytest.mark.parametrize("failing, code", [(None, 0), ("three-d-ultra-upload-prod-expire-abandoned", 1)])
def test_make_sweep_invokes_the_sweep_with_an_empty_event_and_fails_when_it_failed(aws, monkeypatch, failing, code):
    log_dir, _ = aws
    if failing:
        monkeypatch.setenv("STAND_IN_FAILING_FUNCTION", failing)

    result = subprocess.run([sys.executable, "-m", "ops.sweep", "--stage", "prod", "--region", REGION],
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)

    assert result.returncode == code, result.stderr
    [invoke] = [json.loads(line) for line in (log_dir / "aws.log").read_text().splitlines()]
    assert invoke[:8] == ["lambda", "invoke", "--region", REGION, "--function-name",
                          "three-d-ultra-upload-prod-expire-abandoned", "--cli-binary-format", "raw-in-base64-out"]
    assert invoke[8:10] == ["--payload", "{}"]
    if failing:
        assert "three-d-ultra-upload-prod-expire-abandoned failed (Unhandled)" in result.stderr


def test_a_health_check_that_answers_another_version_fails(health_server):
    with pytest.raises(DeployError, match="answers version 'v9.9.9', expected 'v10.0.0'"):
        check_health(health_server, "v10.0.0")
