"""The migration runner on the real database."""

from chalicelib.migrate import apply_migrations, available_migrations


def test_applying_migrations_again_changes_nothing_and_all_are_recorded(db):
    assert apply_migrations(db) == []
    recorded = [row[0] for row in db.run("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [version for version, _ in available_migrations()]


import threading
from pathlib import Path

import pytest

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.migrate import MigrationLocked


@pytest.fixture
def fresh_db(db, stack_env):
    name = f"migrations_{threading.get_ident()}"
    db.run(f"DROP DATABASE IF EXISTS {name}")
    db.run(f"CREATE DATABASE {name}")
    url = stack_env["DATABASE_URL"].replace("/uploads?", f"/{name}?")
    database = Database(DatabaseSettings.from_url(url), application_name="migration-tests")
    yield database
    database.close()
    db.run(f"DROP DATABASE {name} WITH (FORCE)")


def write(directory: Path, files: dict) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_a_fresh_database_gets_every_migration_in_order(fresh_db):
    assert apply_migrations(fresh_db) == [version for version, _ in available_migrations()]
    assert apply_migrations(fresh_db) == []


def test_a_failing_migration_rolls_back_whole_and_is_not_recorded(fresh_db, tmp_path):
    migrations = write(tmp_path / "m", {
        "0001_ok.sql": "CREATE TABLE a (id int);",
        "0002_broken.sql": "CREATE TABLE b (id int); INSERT INTO nowhere VALUES (1);",
    })

    with pytest.raises(Exception):
        apply_migrations(fresh_db, migrations)

    assert [r[0] for r in fresh_db.run("SELECT version FROM schema_migrations")] == ["0001_ok"]
    assert fresh_db.run("SELECT to_regclass('a') IS NOT NULL, to_regclass('b') IS NULL") == [[True, True]]


def test_two_runs_at_once_are_refused_by_the_advisory_lock(fresh_db, tmp_path):
    migrations = write(tmp_path / "slow", {"0001_slow.sql": "SELECT pg_sleep(1.5); CREATE TABLE slow (id int);"})
    results = []

    def run():
        try:
            results.append(apply_migrations(fresh_db, migrations))
        except MigrationLocked as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(map(type, results), key=str) == sorted([list, MigrationLocked], key=str)
    assert fresh_db.run("SELECT count(*) FROM schema_migrations") == [[1]]
