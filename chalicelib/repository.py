"""All SQL of the service. Values go in as `:name` placeholders, filled in by `db.render` (escaped, parenthesised)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

from pg8000.exceptions import DatabaseError

from . import domain
from .db import Database

# Any constant will do, as long as every migration runner uses the same one.
MIGRATION_LOCK_ID = 3_600_2026
# The key space of the advisory locks on Idempotency-Keys: (this, hashtext(digest)), as upload_key_taken in
# migration 0006 takes them.
UPLOAD_KEY_LOCK_SPACE = 36002026

_UPLOAD_COLUMNS = (
    "id, session_token_hash, original_url, file_type, file_size, status, created_at, confirmed_at"
)


@dataclass(frozen=True)
class UploadRecord:
    """One row of `uploads`, as the use cases need it."""

    id: str
    token_hash: str
    key: str
    file_type: str
    file_size: int
    status: str
    created_at: datetime
    confirmed_at: Optional[datetime]


@dataclass(frozen=True)
class CreateOutcome:
    """What an insert-or-replay did: `record` is None when the replay was refused or a limit was reached;
    `retry_after_seconds` is set in the latter case."""

    record: Optional[UploadRecord]
    inserted: bool
    retry_after_seconds: Optional[int] = None


@dataclass(frozen=True)
class LimitCheck:
    """One limit a new job must pass: at most `count` creates per `seconds` for this (scope, key)."""

    scope: str
    key: str
    count: int
    seconds: int


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel found and did: the job as it stood before the statement, and whether this call cancelled it."""

    owned: bool
    status: str
    confirmed: bool
    key: str
    report_owed: Optional[str]
    cancelled: bool


@dataclass(frozen=True)
class ReplayConflict:
    """Why an Idempotency-Key replay was refused."""

    same_request: bool
    confirmed: bool
    status: str


# One limit of a create, as a data-modifying CTE. ON CONFLICT DO UPDATE locks the key's row and evaluates
# against its latest committed version (not the statement's snapshot), so concurrent creates of one key queue
# here and each sees the hits of those before it. `hits` keeps the admitted creates still in the window, at most
# `count` of them, oldest first (clock_timestamp() is read after the lock, so they are appended in order): a
# create is admitted when fewer than `count` are kept or the oldest of the last `count` has left the window. A
# refusal's wait is the time until that one leaves, in whole seconds, at least 1. `after` skips this limit when
# an earlier one refused the create, and `fresh` skips every limit for a replay of an existing job.
_LIMIT_CTE = (
    "limit_{n} AS ("
    " INSERT INTO rate_limits AS r (scope, key, hits, admitted, updated_at)"
    " SELECT :scope_{n}, :key_{n}, ARRAY[clock_timestamp()], true, clock_timestamp() FROM fresh"
    " WHERE counts {after}"
    " ON CONFLICT (scope, key) DO UPDATE SET (hits, admitted, updated_at) = ("
    "  SELECT CASE WHEN ok THEN kept || at ELSE r.hits END, ok, at"
    "  FROM (SELECT clock_timestamp() AS at) AS t,"
    "  LATERAL (SELECT cardinality(r.hits) < :count_{n}"
    "   OR r.hits[cardinality(r.hits) - :count_{n} + 1] <= at - make_interval(secs => :seconds_{n}) AS ok) AS o,"
    "  LATERAL (SELECT coalesce(array_agg(h ORDER BY h), '{{}}') AS kept"
    "   FROM unnest(r.hits) WITH ORDINALITY AS u(h, i)"
    "   WHERE i > cardinality(r.hits) + 1 - :count_{n} AND h > at - make_interval(secs => :seconds_{n})) AS k)"
    " RETURNING admitted, greatest(1, ceil(extract(epoch FROM r.hits[cardinality(r.hits) - :count_{n} + 1]"
    "  + make_interval(secs => :seconds_{n}) - r.updated_at)))::int AS retry_after)"
)


class Uploads:
    """The `uploads` table, spoken in the domain's verbs."""

    def __init__(self, db: Database):
        self._db = db

    def create(
        self,
        *,
        upload_id: str,
        email: str,
        token_hash: str,
        key: str,
        file_type: str,
        file_size: int,
        fingerprint: str,
        idempotency_key: Optional[str],
        limits: Sequence[LimitCheck] = (),
        legacy_idempotency_key: Optional[str] = None,
        legacy_fingerprint: Optional[str] = None,
    ) -> CreateOutcome:
        """Insert a pending job, or, for a replayed Idempotency-Key of the same request, rotate its token.

        `idempotency_key` and `fingerprint` are digests (never the key or the email); the `legacy_` ones are the
        forms rows written before migration 0006 hold, matched too and upgraded on replay.
        The database decides in one statement, so concurrent replays of one key make exactly one job, and the
        limits are exact under concurrency: each one is a row whose lock serialises the creates of its key.
        A replay of an existing job, or a send racing the one that creates it, counts against no limit (see
        upload_key_taken in migration 0006); a create refused by one limit is not counted by the limits after it.
        """
        params = dict(id=upload_id, email=email, hash=token_hash, key=key, file_type=file_type,
                      file_size=file_size, idem=idempotency_key, fingerprint=fingerprint,
                      legacy_idem=legacy_idempotency_key, legacy_fingerprint=legacy_fingerprint, pending=domain.PENDING)
        ctes, admitted = [], []
        if limits:
            ctes.append("fresh AS (SELECT NOT upload_key_taken(:idem, :legacy_idem) AS counts)")
        for n, limit in enumerate(limits):
            ctes.append(_LIMIT_CTE.format(n=n, after=" ".join(admitted)))
            admitted.append(f"AND NOT EXISTS (SELECT 1 FROM limit_{n} WHERE NOT admitted)")
            params.update({f"scope_{n}": limit.scope, f"key_{n}": limit.key, f"count_{n}": limit.count,
                           f"seconds_{n}": limit.seconds})
        # A replay of a job this statement's snapshot sees, in either form; a row a racing send committed since is
        # found again by the re-check of the updated row, or by the insert's ON CONFLICT below.
        ctes.append(
            "replayed AS (UPDATE uploads SET session_token_hash = :hash, updated_at = now(),"
            " idempotency_key = :idem, request_fingerprint = :fingerprint"
            " WHERE idempotency_key IN (:idem, :legacy_idem)"
            " AND request_fingerprint IN (:fingerprint, :legacy_fingerprint)"
            " AND confirmed_at IS NULL AND status = :pending"
            f" RETURNING {_UPLOAD_COLUMNS}, false AS inserted)"
        )
        ctes.append(
            "created AS (INSERT INTO uploads (id, email, session_token_hash, original_url, file_type, file_size,"
            " idempotency_key, request_fingerprint)"
            " SELECT :id, :email, :hash, :key, :file_type, :file_size, :idem, :fingerprint"
            " WHERE NOT EXISTS (SELECT 1 FROM replayed)"
            " AND NOT EXISTS (SELECT 1 FROM uploads WHERE idempotency_key = :legacy_idem) "
            + " ".join(admitted) +
            " ON CONFLICT (idempotency_key) DO UPDATE"
            " SET session_token_hash = EXCLUDED.session_token_hash, updated_at = now()"
            " WHERE uploads.request_fingerprint = EXCLUDED.request_fingerprint"
            " AND uploads.confirmed_at IS NULL AND uploads.status = :pending"
            f" RETURNING {_UPLOAD_COLUMNS}, (xmax = 0) AS inserted)"
        )
        refused = ", ".join(f"(SELECT retry_after FROM limit_{n} WHERE NOT admitted)" for n in range(len(limits)))
        # The key's lock comes first, before any row lock: the planner orders the CTEs below as it likes, and a
        # send whose `replayed` locked the job's row before waiting for the key deadlocked with the send holding
        # the key and waiting for that row. Taken by its own statement in the same simple-query message (one round
        # trip, one implicit transaction, one server connection behind a transaction-mode pooler), the lock is held
        # before the WITH statement takes its snapshot, so that statement also sees every send of the key before
        # it. The lock's statement returns no row.
        lock = ("SELECT WHERE pg_advisory_xact_lock(:lock_space, hashtext(:idem)) IS NULL; "
                if idempotency_key is not None else "")
        params["lock_space"] = UPLOAD_KEY_LOCK_SPACE
        rows = self._db.run(
            lock + "WITH " + ", ".join(ctes) +
            f" SELECT job.*, {'COALESCE(' + refused + ')' if limits else 'NULL::int'} FROM (VALUES (1)) AS one"
            " LEFT JOIN (SELECT * FROM replayed UNION ALL SELECT * FROM created) AS job ON true",
            **params,
        )
        *columns, inserted, retry_after = rows[0]
        if columns[0] is None:
            return CreateOutcome(record=None, inserted=False, retry_after_seconds=retry_after)
        return CreateOutcome(record=UploadRecord(*columns), inserted=inserted)

    def replay_conflict(self, idempotency_key: str, fingerprint: str, legacy_idempotency_key: Optional[str] = None,
                        legacy_fingerprint: Optional[str] = None) -> Optional[ReplayConflict]:
        """Explain why a replay of this key (digests, as for `create`) was refused (None if the key is unknown)."""
        rows = self._db.run(
            "SELECT coalesce(request_fingerprint IN (:fingerprint, :legacy_fingerprint), false),"
            " confirmed_at IS NOT NULL, status"
            " FROM uploads WHERE idempotency_key IN (:idem, :legacy_idem)",
            fingerprint=fingerprint,
            idem=idempotency_key,
            legacy_fingerprint=legacy_fingerprint,
            legacy_idem=legacy_idempotency_key,
        )
        return ReplayConflict(*rows[0]) if rows else None

    def get(self, upload_id: str) -> Optional[UploadRecord]:
        """The job with this id, or None."""
        rows = self._db.run(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE id = :id", id=upload_id)
        return UploadRecord(*rows[0]) if rows else None

    def mark_confirmed(self, upload_id: str, token_hash: str, etag: str) -> Optional[UploadRecord]:
        """Confirm a pending job once, pinning the ETag of the bytes checked; None when it was already confirmed,
        expired, or its token rotated."""
        rows = self._db.run(
            "UPDATE uploads SET confirmed_at = now(), updated_at = now(), etag = :etag"
            " WHERE id = :id AND session_token_hash = :hash AND confirmed_at IS NULL AND status = :pending"
            f" RETURNING {_UPLOAD_COLUMNS}",
            id=upload_id,
            hash=token_hash,
            etag=etag,
            pending=domain.PENDING,
        )
        return UploadRecord(*rows[0]) if rows else None

    def cancel(self, upload_id: str, token_hash: str) -> Optional[CancelOutcome]:
        """Cancel a pending, unconfirmed job held by this token, in one statement that also tells why not: None for
        an unknown id.

        The UPDATE decides (a concurrent confirm, expiry or token rotation makes its condition false); the SELECT
        reads the row as it stood before this statement, so `cancelled` false with a pending, unconfirmed, owned
        row means another transaction changed it meanwhile.
        """
        rows = self._db.run(
            "WITH cancelled AS ("
            " UPDATE uploads SET status = :cancelled, updated_at = now()"
            " WHERE id = :id AND session_token_hash = :hash AND status = :pending AND confirmed_at IS NULL"
            " RETURNING id)"
            " SELECT session_token_hash = :hash, status, confirmed_at IS NOT NULL, original_url, report_owed,"
            " EXISTS (SELECT 1 FROM cancelled)"
            " FROM uploads WHERE id = :id",
            id=upload_id,
            hash=token_hash,
            pending=domain.PENDING,
            cancelled=domain.CANCELLED,
        )
        return CancelOutcome(*rows[0]) if rows else None

    def expire_abandoned(self, older_than_seconds: int) -> int:
        """Mark pending, unconfirmed jobs older than the age as expired; return how many.

        One conditional statement: a job confirmed concurrently is either confirmed or expired, never both.
        """
        rows = self._db.run(
            "UPDATE uploads SET status = :expired, updated_at = now()"
            " WHERE status = :pending AND confirmed_at IS NULL"
            " AND created_at < now() - make_interval(secs => :age) RETURNING id",
            age=older_than_seconds,
            expired=domain.EXPIRED,
            pending=domain.PENDING,
        )
        return len(rows)

    def objects_to_delete(self, limit: int, url_ttl_seconds: int) -> list[tuple[str, str]]:
        """(id, key) of ended, unconfirmed jobs whose object has not been removed for good yet.

        An expired job's URLs died with it (no URL outlives the abandoned age). A cancelled job's last URL may
        still be valid for `url_ttl_seconds` after the cancel, and a PUT through it puts an object back after the
        cancel's own delete: its object is deleted (and recorded) only once that URL is dead too.
        """
        rows = self._db.run(
            "(SELECT id, original_url, updated_at FROM uploads WHERE status = :expired AND object_deleted_at IS NULL"
            " ORDER BY updated_at LIMIT :limit)"
            " UNION ALL"
            " (SELECT id, original_url, updated_at FROM uploads WHERE status = :cancelled"
            " AND object_deleted_at IS NULL AND updated_at < now() - make_interval(secs => :ttl)"
            " ORDER BY updated_at LIMIT :limit)"
            " ORDER BY updated_at LIMIT :limit",
            limit=limit,
            ttl=url_ttl_seconds,
            expired=domain.EXPIRED,
            cancelled=domain.CANCELLED,
        )
        return [(row[0], row[1]) for row in rows]

    def mark_objects_deleted(self, upload_ids: list[str]) -> None:
        """Record that these jobs' objects are gone."""
        if upload_ids:
            self._db.run(
                "UPDATE uploads SET object_deleted_at = now() WHERE id = ANY(string_to_array(:ids, ','))",
                ids=",".join(upload_ids),
            )

    def forget_rate_limits(self, older_than_seconds: int) -> int:
        """Drop limit rows untouched for longer than every window (their hits count no more); return how many."""
        rows = self._db.run(
            "DELETE FROM rate_limits WHERE updated_at < now() - make_interval(secs => :age) RETURNING 1",
            age=older_than_seconds,
        )
        return len(rows)

    def clear_old_emails(self, older_than_days: int) -> int:
        """Clear the email of jobs confirmed or finished (domain.FINISHED) more than this many days ago; return how
        many. The email is kept only while the job may still need to reach its person.

        Everything derived from it goes with it: the request fingerprint (a digest of email, type and size) and
        the Idempotency-Key's digest, which nothing needs once the job can no longer be replayed."""
        rows = self._db.run(
            "UPDATE uploads SET email = '', request_fingerprint = '', idempotency_key = NULL"
            " WHERE (email <> '' OR request_fingerprint <> '' OR idempotency_key IS NOT NULL)"
            " AND (confirmed_at < now() - make_interval(days => :days)"
            " OR (status = ANY(string_to_array(:finished, ','))"
            " AND updated_at < now() - make_interval(days => :days)))"
            " RETURNING id",
            days=older_than_days,
            finished=",".join(domain.FINISHED),
        )
        return len(rows)

    def owe_report(self, upload_id: str, token_hash: str, event: str) -> None:
        """Record that this job's `event` ('created', 'confirmed' or 'cancelled') was committed but never answered or
        reported.

        Only a job that is in that state and holds this token is marked: for 'created' the row exists only if our
        own insert (with our fresh id) committed; for 'confirmed' only if the job is confirmed; for 'cancelled'
        only if it is cancelled.
        """
        self._db.run(
            "UPDATE uploads SET report_owed = :event"
            " WHERE id = :id AND session_token_hash = :hash"
            " AND (CASE :event WHEN 'confirmed' THEN confirmed_at IS NOT NULL"
            " WHEN 'cancelled' THEN status = :cancelled ELSE confirmed_at IS NULL END)",
            id=upload_id,
            hash=token_hash,
            event=event,
            cancelled=domain.CANCELLED,
        )

    def claim_owed_report(self, upload_id: str, token_hash: str, event: str) -> Optional[UploadRecord]:
        """Take the owed `event` of this job, once: the job if this call took it, else None."""
        rows = self._db.run(
            "UPDATE uploads SET report_owed = NULL"
            " WHERE id = :id AND session_token_hash = :hash AND report_owed = :event"
            f" RETURNING {_UPLOAD_COLUMNS}",
            id=upload_id,
            hash=token_hash,
            event=event,
        )
        return UploadRecord(*rows[0]) if rows else None

    def forget_unseen(self, upload_id: str) -> None:
        """Delete a job whose creation was never answered and that no Idempotency-Key can replay: nobody has its
        id or token. (If this fails too, the abandoned-upload sweep expires it later.)"""
        self._db.run("DELETE FROM uploads WHERE id = :id AND idempotency_key IS NULL AND confirmed_at IS NULL",
                     id=upload_id)

    def ping(self) -> None:
        """One round trip to prove the database answers."""
        self._db.run("SELECT 1")


# A DO block takes no parameters, and a placeholder inside its dollar-quoted body would be spliced into code that
# render() cannot see. So the values travel outside the body, as transaction-local settings set by a SELECT in the
# same simple-query message (one implicit transaction, one round trip, one server connection behind a
# transaction-mode pooler), and the body reads them with current_setting().
_SET_MIGRATION_VALUES = (
    "SELECT set_config('migration.lock', :lock, true) IS NULL,"
    " set_config('migration.version', :version, true) IS NULL,"
    " set_config('migration.sql', :sql, true) IS NULL;"
)
_TAKE_MIGRATION_LOCK = (
    " IF NOT pg_try_advisory_xact_lock(current_setting('migration.lock')::bigint) THEN"
    "  RAISE EXCEPTION 'another migration run holds the lock' USING ERRCODE = 'lock_not_available';"
    " END IF;"
)


def ensure_migrations_table(db: Database) -> None:
    """Create the table that records applied migrations (under the lock: two first runs would collide)."""
    db.run(
        _SET_MIGRATION_VALUES +
        " DO $migration$ BEGIN" + _TAKE_MIGRATION_LOCK +
        " CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());"
        " END $migration$",
        lock=str(MIGRATION_LOCK_ID),
        version="",
        sql="",
    )


def applied_migrations(db: Database) -> set[str]:
    """Versions already applied."""
    return {row[0] for row in db.run("SELECT version FROM schema_migrations")}


def apply_migration(db: Database, version: str, sql: str) -> None:
    """Apply one migration and record it, in one transaction, under the advisory lock; skip it if recorded."""
    # The lock, the check, the change and the record commit or roll back together.
    # lock_timeout: an ALTER queued behind a long transaction (the sweep, a slow request) would make every
    # later statement on the table queue behind it; give up after 2 s instead (under the API's 5 s database
    # timeout), roll back, and let the operator retry. SET LOCAL ends with this statement's transaction.
    db.run(
        _SET_MIGRATION_VALUES +
        " DO $migration$ BEGIN SET LOCAL lock_timeout = '2s';" + _TAKE_MIGRATION_LOCK +
        " IF EXISTS (SELECT 1 FROM schema_migrations WHERE version = current_setting('migration.version'))"
        " THEN RETURN; END IF;"
        " EXECUTE current_setting('migration.sql');"
        " INSERT INTO schema_migrations (version) VALUES (current_setting('migration.version'));"
        " END $migration$",
        lock=str(MIGRATION_LOCK_ID),
        version=version,
        sql=sql,
    )


def is_lock_not_available(exc: DatabaseError) -> bool:
    """True when the error is the migration lock being held elsewhere."""
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return detail.get("C") == "55P03" and "another migration run" in detail.get("M", "")


def is_lock_timeout(exc: DatabaseError) -> bool:
    """True when a statement gave up waiting for a table lock (lock_timeout)."""
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return detail.get("C") == "55P03" and not is_lock_not_available(exc)
