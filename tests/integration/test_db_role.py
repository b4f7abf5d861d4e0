"""`python -m ops.db_role` against the local PostgreSQL: the API's role changes rows of the app's tables and nothing
else. The API's operations (create, PUT, confirm, status, cancel, rate limits, health, the sweep) work under it;
DDL, TRUNCATE and the migrations' table are refused; a table a later migration creates is covered."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from chalice.test import Client
from pg8000.exceptions import DatabaseError

import app as app_module
from chalicelib import services
from chalicelib.config import DatabaseSettings, Settings
from chalicelib.db import Database
from chalicelib.deps import Dependencies
from chalicelib.migrate import apply_migrations
from ops.db_role import pooled_host, role_url
from tests.helpers import ApiClient, put_object, upload_body
from tests.images import png_bytes

ROOT = Path(__file__).resolve().parents[2]
ROLE = "api_least_privilege"
PNG = png_bytes()
KEY = "5f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"


def database(url, **options):
    return Database(DatabaseSettings.from_url(url), application_name="tests", statement_timeout=None, **options)


@pytest.fixture(scope="module")
def owner_url(db, stack_env):
    """A database of its own with every migration applied by the owner (the direct URL's role)."""
    name = "role_check"
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    db.run(f"CREATE DATABASE {name}")
    url = stack_env["DATABASE_URL"].replace("/uploads?", f"/{name}?")
    owner = database(url)
    apply_migrations(owner)
    owner.close()
    yield url
    db.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    for role in (ROLE, "too_powerful"):
        db.run(f"DROP ROLE IF EXISTS {role}")


def db_role(owner_url, *args):
    return subprocess.run([sys.executable, "-m", "ops.db_role", "--role", ROLE, *args], cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": owner_url}, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def api_url(owner_url):
    result = db_role(owner_url, "--host", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    [url] = result.stdout.splitlines()
    assert url.startswith(f"postgresql://{ROLE}:") and "@127.0.0.1:" in url
    return url


@pytest.fixture
def as_role(api_url, stack_env, monkeypatch):
    """The Chalice app in-process with its database settings naming the role (storage as usual)."""
    deps = Dependencies(Settings.from_env({**stack_env, "DATABASE_URL": api_url, "RATE_LIMIT_PER_IP": "100/600"}))
    monkeypatch.setattr(app_module, "deps", deps)
    with Client(app_module.app) as client:
        yield ApiClient(client.http), deps
    deps.database.close()


def test_the_api_works_under_the_role(as_role, api_url):
    api, deps = as_role
    role = database(api_url)
    assert role.run("SELECT current_user") == [[ROLE]]
    role.close()

    created = api.create(upload_body(file_size=len(PNG)), headers={"Idempotency-Key": KEY})
    assert created.status == 201, created.body
    replayed = api.create(upload_body(file_size=len(PNG)), headers={"Idempotency-Key": KEY})
    assert replayed.status == 200 and replayed.body["uploadId"] == created.body["uploadId"]
    assert put_object(replayed.body["uploadUrl"], PNG, "image/png")[0] == 200
    upload_id, token = replayed.body["uploadId"], replayed.body["sessionToken"]
    assert api.confirm(upload_id, token).status == 200
    assert api.status(upload_id, token).body["confirmedAt"] is not None
    cancelled = api.create(upload_body())
    assert api.cancel(cancelled.body["uploadId"], cancelled.body["sessionToken"]).status == 204
    assert api.request("GET", "/api/health").body["checks"] == {"database": "ok", "storage": "ok"}
    # The sweep uses the same role: it expires, deletes, clears emails and forgets old rate-limit rows.
    summary = services.expire_abandoned_uploads(uploads=deps.uploads, storage=deps.storage, older_than_seconds=0,
                                                url_ttl_seconds=0, email_retention_days=0, rate_limit_windows=(600,))
    assert summary["objectsDeleted"] >= 1


@pytest.mark.parametrize("statement", [
    "CREATE TABLE public.intruder (id int)",
    "ALTER TABLE uploads ADD COLUMN intruder text",
    "DROP TABLE uploads",
    "CREATE INDEX intruder ON uploads (email)",
    "TRUNCATE uploads",
    "CREATE SCHEMA intruder",
    "INSERT INTO schema_migrations (version) VALUES ('9999_forged')",
    "DELETE FROM schema_migrations",
    "ALTER ROLE api_least_privilege CREATEDB",
])
def test_ddl_and_the_migrations_table_are_refused_to_the_role(api_url, statement):
    role = database(api_url)
    try:
        with pytest.raises(DatabaseError) as refused:
            role.run(statement)
        assert refused.value.args[0]["C"] == "42501", refused.value.args  # insufficient_privilege
    finally:
        role.close()


def test_a_table_a_later_migration_creates_is_covered_without_running_it_again(owner_url, api_url):
    owner = database(owner_url)
    owner.run("CREATE TABLE later_migration (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
    role = database(api_url)
    try:
        role.run("INSERT INTO later_migration (note) VALUES ('written by the API')")
        assert role.run("SELECT note FROM later_migration") == [["written by the API"]]
        with pytest.raises(DatabaseError):
            role.run("DROP TABLE later_migration")
    finally:
        role.close()
        owner.run("DROP TABLE later_migration")
        owner.close()


def test_running_it_again_keeps_the_grants_and_with_grants_only_the_password(owner_url, api_url):
    again = db_role(owner_url, "--grants-only")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert "nothing on schema_migrations, no CREATE; password unchanged" in again.stderr
    assert "  uploads: SELECT, INSERT, UPDATE, DELETE" in again.stderr
    assert "  schema_migrations: none" in again.stderr


def test_a_role_that_can_do_more_is_refused(owner_url, db):
    db.run("DROP ROLE IF EXISTS too_powerful")
    db.run("CREATE ROLE too_powerful LOGIN CREATEDB")
    result = subprocess.run([sys.executable, "-m", "ops.db_role", "--role", "too_powerful"], cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "DATABASE_URL": owner_url}, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and result.stdout == ""
    assert "role too_powerful can do more than change rows" in result.stderr


def test_the_printed_url_is_the_owners_with_the_role_and_neons_pooled_host():
    owner = ("postgresql://neondb_owner:secret@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb"
             "?sslmode=verify-full&sslrootcert=system&channel_binding=require")

    assert role_url(owner, "three_d_ultra_api", "secret") == (
        "postgresql://three_d_ultra_api:secret@ep-cool-darkness-123456-pooler.eu-central-1.aws.neon.tech/neondb"
        "?sslmode=verify-full&sslrootcert=system&channel_binding=require")
    assert role_url("postgresql://o:secret@db.example:5433/x", "r", "p/w+", host="db.example") == (
        "postgresql://r:p%2Fw%2B@db.example:5433/x")
    assert pooled_host("ep-x-1-pooler.eu-central-1.aws.neon.tech") == "ep-x-1-pooler.eu-central-1.aws.neon.tech"
    assert pooled_host("db.internal") == "db.internal"
    assert json.dumps(DatabaseSettings.from_url(role_url(owner, "r", "p")).sslmode) == '"verify-full"'
