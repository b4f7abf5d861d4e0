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


def test_a_migration_blocked_by_a_held_lock_gives_up_within_its_lock_timeout_and_traffic_carries_on(
        fresh_db, tmp_path):
    import time
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.migrate import MigrationBlocked
    from chalicelib.repository import Uploads

    apply_migrations(fresh_db)
    migrations = write(tmp_path / "blocked", {
        **{f"{version}.sql": sql for version, sql in available_migrations()},
        "9001_add_note.sql": "ALTER TABLE uploads ADD COLUMN note text;",
    })
    holder = fresh_db._connect(**_connect_args(fresh_db))
    traffic = Uploads(fresh_db)
    try:
        # A long transaction that touched the table, as the sweep's does: the ALTER must wait for it.
        holder.run("BEGIN")
        holder.run("LOCK TABLE uploads IN ROW EXCLUSIVE MODE")
        with ThreadPoolExecutor(max_workers=1) as pool:
            started = time.monotonic()
            migration = pool.submit(apply_migrations, fresh_db, migrations)
            time.sleep(0.5)  # the ALTER is queued now; a request's read queues behind it until it gives up
            assert traffic.get("no-such-upload") is None
            with pytest.raises(MigrationBlocked, match="9001_add_note waited too long for a table lock"):
                migration.result(timeout=60)
            waited = time.monotonic() - started
    finally:
        holder.run("ROLLBACK")
        holder.close()

    assert waited < 30  # lock_timeout is 2 s; the bound is loose for a loaded machine
    assert traffic.get("no-such-upload") is None
    assert "9001_add_note" not in {r[0] for r in fresh_db.run("SELECT version FROM schema_migrations")}
    assert fresh_db.run("SELECT count(*) FROM information_schema.columns"
                        " WHERE table_name = 'uploads' AND column_name = 'note'") == [[0]]
    assert apply_migrations(fresh_db, migrations) == ["9001_add_note"]  # with the lock gone it applies


def _connect_args(database):
    s = database._settings
    return dict(user=s.user, password=s.password, host=s.host, port=s.port, database=s.database)


def test_the_status_checks_are_replaced_by_named_ones_whatever_the_server_had_called_them(fresh_db, tmp_path):
    earlier = write(tmp_path / "earlier", {f"{version}.sql": sql for version, sql in available_migrations()
                                           if version < "0005"})
    apply_migrations(fresh_db, earlier)
    # A database whose unnamed CHECKs got other names than this server would give them.
    for column, name in (("status", "legacy_status_rule"), ("report_owed", "legacy_owed_rule")):
        (current,) = fresh_db.run(
            "SELECT c.conname FROM pg_constraint c JOIN pg_attribute a"
            " ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
            " WHERE c.conrelid = 'uploads'::regclass AND c.contype = 'c' AND a.attname = :column", column=column)[0]
        fresh_db.run(f'ALTER TABLE uploads RENAME CONSTRAINT "{current}" TO {name}')
    fresh_db.run("INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size,"
                 " request_fingerprint, status) VALUES ('a', '', 'h', 'k', 'image/png', 1, '', 'expired')")

    applied = apply_migrations(fresh_db)

    assert [version for version in applied if version.startswith("0005")] == [
        "0005_named_status_checks_with_cancelled"]
    checks = fresh_db.run("SELECT conname FROM pg_constraint WHERE conrelid = 'uploads'::regclass AND contype = 'c'"
                          " ORDER BY conname")
    assert [name for (name,) in checks if "status" in name or "owed" in name] == [
        "uploads_report_owed_check", "uploads_status_check"]
    fresh_db.run("UPDATE uploads SET status = 'cancelled', report_owed = 'cancelled' WHERE id = 'a'")
    with pytest.raises(Exception, match="uploads_status_check"):
        fresh_db.run("UPDATE uploads SET status = 'archived' WHERE id = 'a'")
