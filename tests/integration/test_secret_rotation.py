"""Secrets rotate under a warm server: SSM over real HTTP (moto's server mode), a PostgreSQL role whose password
changes (SCRAM), and a SeaweedFS user whose access key is replaced through its IAM API, as R2 tokens are."""

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pytest

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.migrate import apply_migrations
from devstack.postgres import PostgresCluster
from devstack.processes import free_port, stop_process, wait_for_port
from devstack.seaweed import SeaweedS3
from devstack.serve import start_api
from ops.bucket import configure_bucket
from tests.helpers import http, put_object, upload_body
from tests.images import png_bytes

PNG = png_bytes()
PREFIX = "/3d-ultra/test"
ADMIN_KEY, ADMIN_SECRET = "adminaccesskey0001", "admin-secret-key"


class Rotation:
    """The servers, their admin handles, and the warm API."""

    def __init__(self, base: Path):
        self.base = base
        self.postgres = PostgresCluster(base / "pg", free_port(), password="admin-password")
        # The IAM API (on the S3 port) manages keys of users created through it, live.
        self.s3 = SeaweedS3(base / "s3", access_key=ADMIN_KEY, secret_key=ADMIN_SECRET,
                            extra_args=("-s3.iam.readOnly=false",))
        self.moto = None
        self.api = None
        self.failures = []

    def start(self, output_dir):
        self.postgres.start()
        # No statement_timeout: CREATE DATABASE cannot run in a transaction block.
        self.admin = Database(DatabaseSettings.from_url(self.postgres.url("postgres")), application_name="tests",
                              statement_timeout=None)
        self.admin.run("CREATE ROLE app LOGIN PASSWORD 'first-password'")
        self.admin.run("CREATE DATABASE uploads OWNER app")
        migrator = Database(DatabaseSettings.from_url(self.database_url("first-password")))
        apply_migrations(migrator)
        migrator.close()

        self.s3.start()
        configure_bucket(endpoint_url=self.s3.endpoint_url, access_key_id=ADMIN_KEY, secret_access_key=ADMIN_SECRET,
                         bucket="uploads", allowed_origins=["http://127.0.0.1"])
        self.iam = boto3.client("iam", endpoint_url=self.s3.endpoint_url, region_name="us-east-1",
                                aws_access_key_id=ADMIN_KEY, aws_secret_access_key=ADMIN_SECRET)
        self.iam.create_user(UserName="app")
        self.iam.put_user_policy(UserName="app", PolicyName="uploads", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::uploads/*",
                                                                               "arn:aws:s3:::uploads"]}]}))

        moto_port = free_port()
        self.moto_log = open(self.base / "moto.log", "ab")
        self.moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                                      "-p", str(moto_port)], stdout=self.moto_log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for_port(moto_port, timeout=30, process=self.moto, what="moto server")
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "eu-central-1", "AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{moto_port}"}
        self.ssm = boto3.client("ssm", endpoint_url=aws["AWS_ENDPOINT_URL_SSM"], region_name="eu-central-1",
                                aws_access_key_id="testing", aws_secret_access_key="testing")
        self.key = self.new_storage_key()
        self.put("database-url", self.database_url("first-password"))
        self.put("r2-endpoint-url", self.s3.endpoint_url)
        self.put("digest-secret", secrets.token_urlsafe(32))

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**aws, "R2_BUCKET": "uploads", "ALLOWED_ORIGIN": self.url, "POSTHOG_API_KEY": "",
               # Only SSM names: the test process's own placeholder values must not leak in.
               "DATABASE_URL": "", "R2_ENDPOINT_URL": "", "R2_ACCESS_KEY_ID": "", "R2_SECRET_ACCESS_KEY": "",
               "DIGEST_SECRET": "", "DIGEST_SECRET_SSM_PARAMETER": f"{PREFIX}/digest-secret",
               "DATABASE_URL_SSM_PARAMETER": f"{PREFIX}/database-url",
               "R2_ENDPOINT_URL_SSM_PARAMETER": f"{PREFIX}/r2-endpoint-url",
               "R2_ACCESS_KEY_ID_SSM_PARAMETER": f"{PREFIX}/r2-access-key-id",
               "R2_SECRET_ACCESS_KEY_SSM_PARAMETER": f"{PREFIX}/r2-secret-access-key"}
        self.api_log = open(os.path.join(output_dir, "secret-rotation-api.log"), "ab")
        self.api = start_api(env, port, log_file=self.api_log)

    def stop(self):
        if self.api is not None:
            stop_process(self.api)
            self.api_log.close()
        if self.moto is not None:
            stop_process(self.moto)
            self.moto_log.close()
        self.s3.stop()
        if getattr(self, "admin", None) is not None:
            self.admin.close()
        self.postgres.stop()

    def database_url(self, password):
        return f"postgresql://app:{password}@127.0.0.1:{self.postgres.port}/uploads?sslmode=disable"

    def put(self, name, value):
        self.ssm.put_parameter(Name=f"{PREFIX}/{name}", Value=value, Type="SecureString", Overwrite=True)

    def new_storage_key(self):
        key = self.iam.create_access_key(UserName="app")["AccessKey"]
        self.put("r2-access-key-id", key["AccessKeyId"])
        self.put("r2-secret-access-key", key["SecretAccessKey"])
        return key["AccessKeyId"]

    def drop_app_connections(self):
        """What a Neon compute restart does: every open connection of the app is closed."""
        self.admin.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'")

    def attempt(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        status, raw = http(method, self.url + path, data=data,
                           headers={"Content-Type": "application/json", **(headers or {})})
        return status, json.loads(raw)

    def request(self, name, method, path, body=None, headers=None):
        """One request, tried at most twice; a failed first attempt is recorded."""
        for attempt in (1, 2):
            status, answer = self.attempt(method, path, body, headers)
            if status < 500:
                return status, answer
            self.failures.append((name, status))
            time.sleep(1.2)  # a person retrying; also past the container's minimum interval between SSM reads
        raise AssertionError(f"{name} failed twice: {status} {answer!r}")

    def create(self):
        status, created = self.request("create", "POST", "/api/upload", upload_body(file_size=len(PNG)))
        assert status == 201, created
        return created

    def confirm(self, created):
        return self.request("confirm", "POST", f"/api/upload/{created['uploadId']}/confirm",
                            headers={"X-Session-Token": created["sessionToken"]})


@pytest.fixture(scope="module")
def rotation(output_dir):
    stack = Rotation(Path(tempfile.mkdtemp(prefix="3d-ultra-rotation-")))
    try:
        stack.start(output_dir)
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(stack.base, ignore_errors=True)


def full_flow(rotation):
    created = rotation.create()
    assert put_object(created["uploadUrl"], PNG, "image/png")[0] == 200
    assert rotation.confirm(created) == (200, {"success": True, "jobId": created["uploadId"], "status": "pending"})
    return created


def test_a_warm_server_follows_a_rotated_storage_key_and_database_password(rotation):
    full_flow(rotation)  # warm: a pooled connection, a storage client with the first key
    first_key = rotation.key

    # R2: a second key into SSM; the first revoked at once (worse than the runbook, which waits for the URLs
    # already handed out). The server still holds the first key until storage refuses it.
    uploaded = rotation.create()
    assert put_object(uploaded["uploadUrl"], PNG, "image/png")[0] == 200
    rotation.key = rotation.new_storage_key()
    rotation.iam.delete_access_key(UserName="app", AccessKeyId=first_key)
    assert rotation.confirm(uploaded)[0] == 200  # refused HEAD -> secrets re-read -> retried with the new key
    after = full_flow(rotation)
    assert f"X-Amz-Credential={rotation.key}" in after["uploadUrl"]
    assert rotation.failures == []

    # Neon: the password changes before SSM is updated (a reset hands out a new one); connections restart.
    rotation.admin.run("ALTER ROLE app PASSWORD 'second-password'")
    rotation.drop_app_connections()
    path, token = f"/api/upload/{after['uploadId']}", {"X-Session-Token": after["sessionToken"]}
    status, body = rotation.attempt("GET", path, headers=token)
    assert (status, body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")  # SSM still held the old password
    rotation.put("database-url", rotation.database_url("second-password"))
    time.sleep(1.2)  # a person retrying; also past the container's minimum interval between SSM reads
    status, body = rotation.attempt("GET", path, headers=token)  # the same request's second attempt
    assert (status, body["jobId"]) == (200, after["uploadId"])
    full_flow(rotation)
    assert rotation.failures == []
