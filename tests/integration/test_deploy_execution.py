"""The deploy plan executed: migrations run first against the direct database, a migrate function that raised
stops the deploy, the health check wants the new version. AWS itself is stood in for by a recording `aws`
command on PATH (the one thing here that cannot be real without an account)."""

import json
import os
import stat
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.migrate import available_migrations
from ops.deploy import DeployError, check_health, execute, plan

FAKE_AWS = '''#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:2] == ["ssm", "get-parameter"]:
    print(os.environ["FAKE_DIRECT_URL"])
elif args[:2] == ["cloudformation", "package"]:
    out = args[args.index("--output-template-file") + 1]
    open(out, "w").write(open(args[args.index("--template-file") + 1]).read())
elif args[:2] == ["cloudformation", "deploy"]:
    sys.path.insert(0, os.getcwd())
    from chalicelib.config import DatabaseSettings
    from chalicelib.db import Database
    db = Database(DatabaseSettings.from_url(os.environ["FAKE_DIRECT_URL"]))
    with open(os.environ["FAKE_AWS_LOG"], "a") as log:
        log.write(json.dumps(["schema at deploy", len(db.run("SELECT version FROM schema_migrations"))]) + "\\n")
    db.close()
elif args[:2] == ["cloudformation", "describe-stacks"]:
    print(os.environ["FAKE_API_URL"])
elif args[:2] == ["lambda", "invoke"]:
    open(args[-1], "w").write(json.dumps({{"errorMessage": "boom"}} if os.environ.get("FAKE_FUNCTION_ERROR")
                                         else {{"applied": []}}))
    answer = {{"StatusCode": 200}}
    if os.environ.get("FAKE_FUNCTION_ERROR"):
        answer["FunctionError"] = "Unhandled"
    print(json.dumps(answer))
'''


@pytest.fixture
def fake_aws(tmp_path, monkeypatch, db, stack_env):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    aws = bin_dir / "aws"
    aws.write_text(FAKE_AWS.format(python=sys.executable))
    aws.chmod(aws.stat().st_mode | stat.S_IEXEC)
    name = "deploy_direct"
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    db.run(f"CREATE DATABASE {name}")
    direct_url = stack_env["DATABASE_URL"].replace("/uploads?", f"/{name}?")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_AWS_LOG", str(tmp_path / "aws.log"))
    monkeypatch.setenv("FAKE_DIRECT_URL", direct_url)
    (tmp_path / "sam.json").write_text("{}")
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
    monkeypatch.setenv("FAKE_API_URL", url)
    yield url
    server.shutdown()


def steps_for(build):
    return plan(stage="prod", region="eu-central-1", bucket="3d-ultra-artifacts", version="v9.9.9", build=build,
                alarm_email=None, throttle_rate=50, throttle_burst=100, rollback=None)


def test_a_deploy_migrates_the_direct_database_first_then_deploys_and_checks_health(fake_aws, health_server, capsys):
    build, direct_url = fake_aws
    outputs = execute(steps_for(build), build=build)
    body = check_health(outputs["ApiUrl"], "v9.9.9")

    calls = [json.loads(line)[:2] for line in (build / "aws.log").read_text().splitlines()]
    assert calls == [["ssm", "get-parameter"], ["cloudformation", "package"], ["s3", "cp"],
                     ["cloudformation", "deploy"], ["schema at deploy", len(available_migrations())],
                     ["cloudformation", "describe-stacks"], ["lambda", "invoke"]]
    direct = Database(DatabaseSettings.from_url(direct_url), application_name="tests")
    try:
        applied = [row[0] for row in direct.run("SELECT version FROM schema_migrations ORDER BY version")]
        assert applied == [version for version, _ in available_migrations()]
    finally:
        direct.close()
    assert body["version"] == "v9.9.9"
    printed = capsys.readouterr().out
    assert direct_url not in printed and "DATABASE_URL=<DirectDatabaseUrl>" in printed


def test_a_migrate_function_that_raised_stops_the_deploy_although_the_cli_exited_0(fake_aws, health_server,
                                                                                   monkeypatch):
    build, _ = fake_aws
    monkeypatch.setenv("FAKE_FUNCTION_ERROR", "1")

    with pytest.raises(DeployError, match=r'the migrate function failed \(Unhandled\): {"errorMessage": "boom"}'):
        execute(steps_for(build), build=build)


def test_a_health_check_that_answers_another_version_fails(health_server):
    with pytest.raises(DeployError, match="answers version 'v9.9.9', expected 'v10.0.0'"):
        check_health(health_server, "v10.0.0")
