"""The job's statuses are defined once (chalicelib/domain.py) and every other place that lists them agrees: the
database's named CHECK as the migrations left it, the OpenAPI JobStatus enum, the processing page, and the statuses
at which the client's poller stops."""

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from pg8000.exceptions import DatabaseError

from chalicelib import domain

ROOT = Path(__file__).resolve().parents[2]


def statuses_in_database(db):
    (definition,) = db.run("SELECT pg_get_constraintdef(oid) FROM pg_constraint"
                           " WHERE conrelid = 'uploads'::regclass AND conname = 'uploads_status_check'")[0]
    return re.findall(r"'([^']*)'::text", definition)


def statuses_in_openapi():
    spec = json.loads((ROOT / "chalicelib" / "openapi.json").read_text())
    return spec["components"]["schemas"]["JobStatus"]["properties"]["status"]["enum"]


def served_module(name, expression):
    """`expression` evaluated by Node over the served page module chalicelib/web/<name> (built from client/src,
    which `npm run check:web` checks), as JSON: the module itself, not its text, so no reformatting fools it."""
    node = shutil.which("node")
    assert node, "node is required (apt-get install nodejs; .ci/run installs it)"
    module = (ROOT / "chalicelib" / "web" / name).as_uri()
    result = subprocess.run([node, "--input-type=module", "-e",
                             f"const m = await import({json.dumps(module)}); console.log(JSON.stringify({expression}));"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def statuses_on_the_processing_page():
    return served_module("status-texts.js", "Object.keys(m.STATUSES)")


def test_the_client_stops_polling_at_exactly_the_domains_final_statuses():
    assert sorted(served_module("poller.js", "[...m.FINAL_JOB_STATUSES]")) == sorted(domain.FINISHED)


def test_the_database_the_openapi_enum_and_the_processing_page_list_exactly_the_domains_statuses(db):
    assert sorted(statuses_in_database(db)) == sorted(domain.STATUSES)
    assert sorted(statuses_in_openapi()) == sorted(domain.STATUSES)
    assert sorted(statuses_on_the_processing_page()) == sorted(domain.STATUSES)


def test_the_status_column_has_one_check_and_it_is_the_named_one(db):
    checks = db.run(
        "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
        " WHERE c.conrelid = 'uploads'::regclass AND c.contype = 'c' AND a.attname = 'status'")
    assert checks == [["uploads_status_check"]]


def test_the_database_refuses_a_status_the_domain_does_not_define(db):
    with pytest.raises(DatabaseError) as refused:
        db.run("INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size,"
               " request_fingerprint, status) VALUES (:id, '', :id, :id, 'image/png', 1, '', 'archived')",
               id=f"lifecycle-{uuid.uuid4()}")

    assert (refused.value.args[0]["C"], refused.value.args[0]["n"]) == ("23514", "uploads_status_check")
