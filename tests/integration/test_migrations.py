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


# The statement the release before migration 0006 sends for a keyed create: the key in clear.
OLD_RELEASE_CREATE = (
    "INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size, idempotency_key,"
    " request_fingerprint) VALUES (:id, 'maya@example.com', :hash, :key_path, 'image/png', 68, :idem, :fingerprint)"
    " ON CONFLICT (idempotency_key) DO UPDATE SET session_token_hash = EXCLUDED.session_token_hash,"
    " updated_at = now() WHERE uploads.request_fingerprint = EXCLUDED.request_fingerprint"
    " AND uploads.confirmed_at IS NULL AND uploads.status = 'pending' RETURNING id, (xmax = 0)")


def old_release_create(database, key):
    from chalicelib import domain

    upload_id = domain.new_upload_id()
    request = domain.UploadRequest("maya@example.com", "image/png", 68)
    return database.run(OLD_RELEASE_CREATE, id=upload_id, hash=domain.hash_token(domain.mint_token()),
                        key_path=domain.object_key(upload_id, "png"), idem=key,
                        fingerprint=request.legacy_fingerprint())[0]


def test_0006_digests_keys_stored_in_clear_and_the_new_code_still_replays_them_without_charging_a_limit(
        fresh_db, tmp_path, live_deps):
    import uuid

    from chalicelib import domain, services
    from chalicelib.config import RateLimit
    from chalicelib.errors import AlreadyConfirmed, RateLimited
    from chalicelib.migrate import MIGRATIONS_DIR
    from chalicelib.repository import Uploads

    before = write(tmp_path / "before", {path.name: path.read_text()
                                         for path in sorted(MIGRATIONS_DIR.glob("*.sql")) if path.name < "0006"})
    apply_migrations(fresh_db, before)
    pending, confirmed, during_deploy = (str(uuid.uuid4()) for _ in range(3))
    pending_id, _ = old_release_create(fresh_db, pending)
    confirmed_id, _ = old_release_create(fresh_db, confirmed)
    fresh_db.run("UPDATE uploads SET confirmed_at = now() WHERE id = :id", id=confirmed_id)

    assert apply_migrations(fresh_db)[0] == "0006_keyed_digests"  # and any later one
    # The release still serving during the deploy writes a key in clear: stored as its digest, and its replay
    # still finds the row.
    written, inserted = old_release_create(fresh_db, during_deploy)
    replayed, inserted_again = old_release_create(fresh_db, during_deploy)
    stored = dict(fresh_db.run("SELECT id, idempotency_key FROM uploads"))

    assert stored == {pending_id: domain.legacy_idempotency_key_digest(pending),
                      confirmed_id: domain.legacy_idempotency_key_digest(confirmed),
                      written: domain.legacy_idempotency_key_digest(during_deploy)}
    assert (inserted, replayed, inserted_again) == (True, written, False)

    secret = live_deps.settings.digest_secret
    deps = dict(uploads=Uploads(fresh_db), storage=live_deps.storage, analytics=live_deps.analytics,
                max_upload_bytes=100, url_ttl_seconds=60, digest_secret=secret, source_ip="203.0.113.7",
                rate_limit_per_ip=RateLimit(1, 600))
    body = {"email": "maya@example.com", "fileType": "image/png", "fileSize": 68}

    again = services.create_upload(body, pending, **deps)
    upgraded = fresh_db.run("SELECT idempotency_key, request_fingerprint FROM uploads WHERE id = :id", id=pending_id)
    with pytest.raises(AlreadyConfirmed):
        services.create_upload(body, confirmed, **deps)
    # The replays were not charged: the one create the limit allows is still free.
    new = services.create_upload(body, None, **deps)
    with pytest.raises(RateLimited):
        services.create_upload(body, None, **deps)

    assert (again.upload_id, again.replayed, new.replayed) == (pending_id, True, False)
    assert upgraded == [[domain.idempotency_key_digest(secret, pending),
                         domain.UploadRequest("maya@example.com", "image/png", 68).fingerprint(secret)]]


def test_0006_leaves_no_key_in_clear_when_the_previous_release_writes_one_while_the_migration_runs(fresh_db, tmp_path):
    import time
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import domain
    from chalicelib.migrate import MIGRATIONS_DIR

    before = write(tmp_path / "before", {path.name: path.read_text()
                                         for path in sorted(MIGRATIONS_DIR.glob("*.sql")) if path.name < "0006"})
    apply_migrations(fresh_db, before)
    existing_id, _ = old_release_create(fresh_db, str(uuid.uuid4()))
    during_migration = str(uuid.uuid4())
    holder = fresh_db._connect(**_connect_args(fresh_db))
    previous_release = Database(fresh_db._settings, application_name="previous-release")
    previous_release.run("SELECT 1")  # connected now: the migration gives up on a lock after 2 s
    try:
        # A request of the previous release holds one keyed row (as its replay's update would): the migration's
        # conversion waits for it, and in the meantime that release keeps creating jobs with keys in clear.
        holder.run("BEGIN")
        holder.run("SELECT 1 FROM uploads WHERE id = :id FOR UPDATE", id=existing_id)
        with ThreadPoolExecutor(max_workers=2) as pool:
            migration = pool.submit(apply_migrations, fresh_db)
            deadline = time.monotonic() + 10
            while not holder.run("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                 " AND wait_event_type = 'Lock'")[0][0]:
                assert time.monotonic() < deadline, "the migration never waited for the held row"
                time.sleep(0.02)
            written = pool.submit(old_release_create, previous_release, during_migration)
            time.sleep(0.3)  # the previous release's create ran, or queued behind the migration
            holder.run("COMMIT")
            assert migration.result(timeout=30)[0] == "0006_keyed_digests"
            written_id, inserted = written.result(timeout=30)
    finally:
        holder.close()
        previous_release.close()
    replayed_id, inserted_again = old_release_create(fresh_db, during_migration)

    in_clear = fresh_db.run("SELECT idempotency_key FROM uploads WHERE idempotency_key !~ '^(hmac|sha256):'")
    assert in_clear == []
    assert dict(fresh_db.run("SELECT id, idempotency_key FROM uploads WHERE id = :id", id=written_id)) == {
        written_id: domain.legacy_idempotency_key_digest(during_migration)}
    assert (inserted, replayed_id, inserted_again) == (True, written_id, False)


def test_0006_lets_a_replay_of_the_previous_release_wait_for_it_and_then_find_its_job(fresh_db, tmp_path):
    import time
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import domain
    from chalicelib.migrate import MIGRATIONS_DIR

    before = write(tmp_path / "before", {path.name: path.read_text()
                                         for path in sorted(MIGRATIONS_DIR.glob("*.sql")) if path.name < "0006"})
    apply_migrations(fresh_db, before)
    replayed_key = str(uuid.uuid4())
    replayed_id, _ = old_release_create(fresh_db, replayed_key)  # converted first (the table is read in order)
    held_id, _ = old_release_create(fresh_db, str(uuid.uuid4()))
    holder = fresh_db._connect(**_connect_args(fresh_db))
    previous_release = Database(fresh_db._settings, application_name="previous-release")
    previous_release.run("SELECT 1")  # connected now: the migration gives up on a lock after 2 s
    try:
        # The conversion has rewritten the first job's key and waits for the second job's row; meanwhile the
        # previous release replays the first job's key, which waits for the conversion's transaction.
        holder.run("BEGIN")
        holder.run("SELECT 1 FROM uploads WHERE id = :id FOR UPDATE", id=held_id)
        with ThreadPoolExecutor(max_workers=2) as pool:
            migration = pool.submit(apply_migrations, fresh_db)

            def waiting() -> int:
                return holder.run("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                  " AND wait_event_type = 'Lock'")[0][0]

            deadline = time.monotonic() + 10
            while waiting() < 1:
                assert time.monotonic() < deadline, "the migration never waited for the held row"
                time.sleep(0.02)
            replay = pool.submit(old_release_create, previous_release, replayed_key)
            while waiting() < 2:
                assert time.monotonic() < deadline, "the replay never waited"
                time.sleep(0.02)
            holder.run("COMMIT")
            applied = migration.result(timeout=30)
            found_id, inserted = replay.result(timeout=30)
    finally:
        holder.close()
        previous_release.close()

    assert applied[0] == "0006_keyed_digests"
    assert (found_id, inserted) == (replayed_id, False)
    assert fresh_db.run("SELECT idempotency_key FROM uploads WHERE id = :id", id=replayed_id) == [
        [domain.legacy_idempotency_key_digest(replayed_key)]]
