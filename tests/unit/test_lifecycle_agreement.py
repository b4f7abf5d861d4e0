"""The job's statuses agree everywhere they are written, checked without a database (so `make unit` catches a
status added to the domain without its migration or its OpenAPI value; tests/integration/test_lifecycle.py checks
the live database's CHECK too)."""

import json
import re
from pathlib import Path

from chalicelib import domain

ROOT = Path(__file__).resolve().parents[2]


def statuses_of_the_last_migration_that_defines_the_status_check():
    defined = None
    for path in sorted((ROOT / "chalicelib" / "migrations").glob("*.sql")):
        for match in re.finditer(r"ADD CONSTRAINT uploads_status_check\s+CHECK \(status IN \(([^)]*)\)\)",
                                 path.read_text()):
            defined = re.findall(r"'([^']+)'", match.group(1))
    return defined


def test_the_last_migration_that_defines_the_status_check_lists_exactly_the_domains_statuses():
    assert statuses_of_the_last_migration_that_defines_the_status_check() == list(domain.STATUSES)


def test_the_openapi_job_status_enum_lists_exactly_the_domains_statuses():
    spec = json.loads((ROOT / "chalicelib" / "openapi.json").read_text())

    assert spec["components"]["schemas"]["JobStatus"]["properties"]["status"]["enum"] == list(domain.STATUSES)


def test_every_stage_of_the_lifecycle_has_its_transitions_and_only_final_stages_have_none():
    assert set(domain.TRANSITIONS) == {*domain.STATUSES, domain.CONFIRMED}
    assert all(target in domain.TRANSITIONS for targets in domain.TRANSITIONS.values() for target in targets)
    assert set(domain.FINISHED) == {stage for stage, targets in domain.TRANSITIONS.items() if not targets}
