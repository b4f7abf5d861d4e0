"""`make prod-local` as a process: one ready line, and nothing left running after SIGTERM. Secrets over real
SSM HTTP: a parameter missing or SSM unreachable answers 503 on every route."""

import json
import os
import re
import signal
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.config import Settings
from chalicelib.deps import Dependencies
from devstack.processes import free_port
from devstack.ssm import MotoSsm
from tests.stack_fixtures import start_prod_local

READY = re.compile(r"prod-local ready: frontend=http://127\.0\.0\.1:\d+ api=http://127\.0\.0\.1:\d+/api "
                   r"storage=http://127\.0\.0\.1:\d+\n")


def processes():
    """{pid: (parent pid, command line)} of every process on the machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            found[int(entry.name)] = (int(parent), cmdline)
    return found


def belonging_to(root_pid, working_dir):
    """Descendants of `root_pid`, and processes naming the stack's directory (pg_ctl's server detaches)."""
    table = processes()
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, (parent, _) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return {pid: table[pid][1] for pid in table if pid in tree or working_dir in table[pid][1]}


def listening(url):
    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parts.hostname, parts.port)) == 0


def test_prod_local_prints_one_ready_line_and_sigterm_leaves_nothing_running(output_dir):
    log_path = os.path.join(output_dir, "prod-local-sigterm.log")
    with open(log_path, "wb") as log:
        process, urls, lines = start_prod_local(log)
        try:
            working_dir = re.search(r"prod-local: working directory (\S+)", Path(log_path).read_text()).group(1)
            running = belonging_to(process.pid, working_dir)
            commands = " ".join(running.values())
        finally:
            process.send_signal(signal.SIGTERM)
            rest, _ = process.communicate(timeout=90)

    assert process.returncode == 0
    print(f"\nprod-local processes before SIGTERM: {len(running)}")
    for needle in ("devstack.prod_local", "devstack.apigw", "moto_server", "weed server", "pgbouncer",
                   f"postgres -D {working_dir}/postgres/data"):
        assert needle in commands, needle
    output = "".join(lines) + rest
    assert len(READY.findall(output)) == 1 and output.count("prod-local ready") == 1, output
    still_there = set(running) & set(processes())
    assert still_there == set(), {pid: running[pid] for pid in still_there}
    assert not any(listening(url) for url in urls.values())
    assert not Path(working_dir).exists()


@pytest.fixture(scope="module")
def ssm(tmp_path_factory):
    server = MotoSsm(log_file=tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


def call_through(settings, monkeypatch, path="/api/health"):
    monkeypatch.setattr(app_module, "deps", Dependencies(settings))
    with Client(app_module.app) as client:
        response = client.http.get(path, headers={"Origin": next(iter(settings.allowed_origins))})
    return response.status_code, json.loads(response.body), response.headers


SSM_SETTINGS = {
    "DATABASE_URL_SSM_PARAMETER": "/3d-ultra/test/database-url",
    "R2_ENDPOINT_URL_SSM_PARAMETER": "/3d-ultra/test/r2-endpoint-url",
    "R2_ACCESS_KEY_ID": "key", "R2_SECRET_ACCESS_KEY": "secret", "R2_BUCKET": "uploads",
    "DIGEST_SECRET_SSM_PARAMETER": "/3d-ultra/test/digest-secret",
    "ALLOWED_ORIGINS": "https://app.3d-ultra.example",
}
UNAVAILABLE = {"error": {"code": "SERVICE_UNAVAILABLE",
                         "message": "The service is temporarily unavailable. Please try again in a moment."}}


@pytest.mark.parametrize("path", ["/api/health", "/", "/api/upload/abcdefghijklmnopqrstuvwx"])
def test_a_missing_ssm_parameter_answers_503_with_the_reason_in_the_log(ssm, monkeypatch, caplog, path):
    ssm.put_secrets({"/3d-ultra/test/r2-endpoint-url": "https://acct.r2.cloudflarestorage.com",
                     "/3d-ultra/test/digest-secret": "d" * 32})
    for name, value in ssm.client_env().items():
        monkeypatch.setenv(name, value)

    status, body, headers = call_through(Settings.from_env(SSM_SETTINGS), monkeypatch, path)

    assert (status, body) == (503, UNAVAILABLE)
    assert headers["Access-Control-Allow-Origin"] == "https://app.3d-ultra.example"
    assert "SSM parameter(s) not found: /3d-ultra/test/database-url" in caplog.text


def test_an_unreachable_ssm_answers_503_and_a_later_request_recovers(ssm, monkeypatch, caplog, stack_env):
    closed = f"http://127.0.0.1:{free_port()}"
    for name, value in {**ssm.client_env(), "AWS_ENDPOINT_URL_SSM": closed}.items():
        monkeypatch.setenv(name, value)
    ssm.put_secrets({"/3d-ultra/test/database-url": stack_env["DATABASE_URL"],
                     "/3d-ultra/test/r2-endpoint-url": stack_env["R2_ENDPOINT_URL"],
                     "/3d-ultra/test/digest-secret": stack_env["DIGEST_SECRET"]})
    settings = Settings.from_env({**SSM_SETTINGS, "R2_ACCESS_KEY_ID": stack_env["R2_ACCESS_KEY_ID"],
                                  "R2_SECRET_ACCESS_KEY": stack_env["R2_SECRET_ACCESS_KEY"],
                                  "R2_BUCKET": stack_env["R2_BUCKET"]})
    deps = Dependencies(settings)
    monkeypatch.setattr(app_module, "deps", deps)

    with Client(app_module.app) as client:
        down = client.http.get("/api/health")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", ssm.endpoint_url)
        up = client.http.get("/api/health")
    deps.database.close()

    assert (down.status_code, json.loads(down.body)) == (503, UNAVAILABLE)
    assert "settings unavailable: EndpointConnectionError" in caplog.text
    assert closed not in down.body.decode()
    assert (up.status_code, json.loads(up.body)["status"]) == (200, "ok")


def test_under_the_stage_prefix_the_limits_reach_the_front_end_origin_cacheably(prod_local):
    request = urllib.request.Request(f"{prod_local['api']}/api/upload/limits",
                                     headers={"Origin": prod_local["frontend"]})
    with urllib.request.urlopen(request, timeout=10) as response:
        status, headers, body = response.status, response.headers, json.loads(response.read())

    assert (status, body) == (200, {"maxUploadBytes": 20 * 1024 * 1024,
                                    "fileTypes": ["image/jpeg", "image/png", "image/webp", "image/heic"]})
    assert (headers["Access-Control-Allow-Origin"], headers["Cache-Control"]) == (prod_local["frontend"],
                                                                                 "public, max-age=3600")


def test_a_photo_uploaded_through_the_stage_prefix_is_processed_to_completed_by_the_stacks_worker(prod_local):
    from tests.helpers import http, put_object
    from tests.images import pillow_bytes

    api, photo = prod_local["api"], pillow_bytes("JPEG", 64, 48)
    status, raw = http("POST", f"{api}/api/upload", json.dumps({
        "email": "maya@example.com", "fileType": "image/jpeg", "fileSize": len(photo)}).encode(),
                       {"Content-Type": "application/json"})
    created = json.loads(raw)
    assert status == 201 and put_object(created["uploadUrl"], photo, "image/jpeg")[0] == 200
    headers = {"Content-Type": "application/json", "X-Session-Token": created["sessionToken"]}
    assert http("POST", f"{api}/api/upload/{created['uploadId']}/confirm", b"{}", headers)[0] == 200

    import time
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = json.loads(http("GET", f"{api}/api/upload/{created['uploadId']}", None, headers)[1])
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.5)

    assert (job["status"], job["progress"], job["errorMessage"]) == ("completed", 100, None)
    model = http("GET", job["resultUrl"])[1]
    assert model[:4] == b"glTF"
