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


# What `get` adds for the job's journey through processing (the status route and the worker read it).
_JOB_COLUMNS = (
    _UPLOAD_COLUMNS + ", attempt, progress, preview_url, result_url, error_code, error_message, updated_at,"
    " workflow_run_id, processing_started_at, completed_at, results_deleted_at,"
    # The view credential's digest and whether it still opens the job, by the database's clock: the status
    # route's one statement answers both.
    " view_token_hash, coalesce(view_expires_at > now(), false)"
)


@dataclass(frozen=True)
class UploadRecord:
    """One row of `uploads`, as the use cases need it (the processing fields only where `get` read them)."""

    id: str
    token_hash: str
    key: str
    file_type: str
    file_size: int
    status: str
    created_at: datetime
    confirmed_at: Optional[datetime]
    attempt: int = 1
    progress: Optional[int] = None
    preview_key: Optional[str] = None
    result_key: Optional[str] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    updated_at: Optional[datetime] = None
    workflow_run_id: Optional[str] = None
    processing_started_at: Optional[datetime] = None
    completed_at: Optional[datetime] = None
    results_deleted_at: Optional[datetime] = None
    view_token_hash: Optional[str] = None
    view_live: bool = False


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
class Claim:
    """A job taken for submission to the processing service."""

    key: str
    file_type: str
    started: bool


@dataclass(frozen=True)
class Finished:
    """When an attempt started processing and when it finished."""

    started_at: Optional[datetime]
    finished_at: datetime


@dataclass(frozen=True)
class EmailClaim:
    """One try at a finished job's email, taken: where it goes and what it says."""

    email: str
    status: str
    error_message: Optional[str]
    tries: int
    view_expires_at: Optional[datetime]


@dataclass(frozen=True)
class RetryOutcome:
    """What a retry found (the job before the statement) and the attempt it started, if any."""

    owned: bool
    status: str
    confirmed: bool
    attempt: int
    results_deleted: bool
    retried_attempt: Optional[int]


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
        rows = self._db.run(f"SELECT {_JOB_COLUMNS} FROM uploads WHERE id = :id", id=upload_id)
        return UploadRecord(*rows[0]) if rows else None

    def mark_confirmed(self, upload_id: str, token_hash: str, etag: str) -> Optional[UploadRecord]:
        """Confirm a pending job once, pinning the ETag of the bytes checked; None when it was already confirmed,
        expired, or its token rotated."""
        # dispatched_at: the hand-off to the queue follows the commit; should it never arrive, the dispatcher
        # finds the job by this time and sends it again.
        rows = self._db.run(
            "UPDATE uploads SET confirmed_at = now(), updated_at = now(), dispatched_at = now(), etag = :etag"
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

    # --- Processing: each step one conditional statement, scoped to the job's attempt -------------------------

    def claim_for_processing(self, upload_id: str, attempt: int, lease_seconds: float) -> Optional[Claim]:
        """Move a confirmed job of this attempt to `processing` and take its submission, once: a duplicate message
        finds the job claimed; a worker that died between this claim and recording its task leaves a lease that
        another may take after `lease_seconds`. `started` is true only for the claim that began the attempt."""
        rows = self._db.run(
            "UPDATE uploads SET status = :processing, progress = coalesce(progress, 0), polled_at = now(),"
            " processing_started_at = coalesce(processing_started_at, now()), updated_at = now()"
            " WHERE id = :id AND attempt = :attempt AND confirmed_at IS NOT NULL AND workflow_run_id IS NULL"
            " AND (status = :pending OR (status = :processing"
            " AND polled_at < now() - make_interval(secs => :lease)))"
            " RETURNING original_url, file_type, processing_started_at = now()",
            id=upload_id, attempt=attempt, lease=lease_seconds, pending=domain.PENDING,
            processing=domain.PROCESSING,
        )
        return Claim(*rows[0]) if rows else None

    def record_submission(self, upload_id: str, attempt: int, task_id: str) -> bool:
        """Store the processing service's task of this attempt; False when another worker stored one first."""
        rows = self._db.run(
            "UPDATE uploads SET workflow_run_id = :task, polled_at = now(), updated_at = now()"
            " WHERE id = :id AND attempt = :attempt AND status = :processing AND workflow_run_id IS NULL"
            " RETURNING 1",
            id=upload_id, attempt=attempt, task=task_id, processing=domain.PROCESSING,
        )
        return bool(rows)

    def take_poll(self, upload_id: str, attempt: int, task_id: str, min_gap_seconds: float) -> bool:
        """Take the next look at the task: True for one caller per `min_gap_seconds`, so that duplicate messages
        do not multiply into parallel polling chains."""
        rows = self._db.run(
            "UPDATE uploads SET polled_at = now()"
            " WHERE id = :id AND attempt = :attempt AND status = :processing AND workflow_run_id = :task"
            " AND (polled_at IS NULL OR polled_at < now() - make_interval(secs => :gap)) RETURNING 1",
            id=upload_id, attempt=attempt, task=task_id, gap=min_gap_seconds, processing=domain.PROCESSING,
        )
        return bool(rows)

    def record_progress(self, upload_id: str, attempt: int, task_id: str, progress: Optional[int],
                        preview_key: Optional[str]) -> None:
        """Progress only grows, and the preview is stored once."""
        self._db.run(
            "UPDATE uploads SET progress = greatest(progress, :progress), updated_at = now(),"
            " preview_url = coalesce(preview_url, :preview)"
            " WHERE id = :id AND attempt = :attempt AND status = :processing AND workflow_run_id = :task"
            " AND (progress IS DISTINCT FROM greatest(progress, :progress)"
            " OR (preview_url IS NULL AND :preview IS NOT NULL))",
            id=upload_id, attempt=attempt, task=task_id, progress=progress, preview=preview_key,
            processing=domain.PROCESSING,
        )

    def complete(self, upload_id: str, attempt: int, task_id: str, result_key: str,
                 preview_key: Optional[str]) -> Optional[Finished]:
        """Mark the attempt completed with its results, once, and owing its person the email that says so: None
        when it was completed, failed or retried."""
        rows = self._db.run(
            "UPDATE uploads SET status = :completed, progress = 100, result_url = :result,"
            " preview_url = coalesce(:preview, preview_url), completed_at = now(), updated_at = now(),"
            " email_due_at = now()"
            " WHERE id = :id AND attempt = :attempt AND status = :processing AND workflow_run_id = :task"
            " RETURNING processing_started_at, completed_at",
            id=upload_id, attempt=attempt, task=task_id, result=result_key, preview=preview_key,
            completed=domain.COMPLETED, processing=domain.PROCESSING,
        )
        return Finished(*rows[0]) if rows else None

    def fail(self, upload_id: str, attempt: int, reason: str, message: str,
             task_id: Optional[str] = None, for_good: bool = False) -> Optional[Finished]:
        """Mark a confirmed job of this attempt that is still on its way failed, once (with `task_id`, only while
        that task is the job's), owing its person an email when it failed `for_good`: None when it had finished or
        moved on already."""
        rows = self._db.run(
            "UPDATE uploads SET status = :failed, error_code = :reason, error_message = :message,"
            " completed_at = now(), updated_at = now(), email_due_at = CASE WHEN :for_good THEN now() END"
            " WHERE id = :id AND attempt = :attempt AND confirmed_at IS NOT NULL"
            " AND status IN (:pending, :processing) AND (:task IS NULL OR workflow_run_id = :task)"
            " RETURNING processing_started_at, completed_at",
            id=upload_id, attempt=attempt, reason=reason, message=message, task=task_id, for_good=for_good,
            failed=domain.FAILED, pending=domain.PENDING, processing=domain.PROCESSING,
        )
        return Finished(*rows[0]) if rows else None

    def retry(self, upload_id: str, token_hash: str, max_attempts: int) -> Optional[RetryOutcome]:
        """Start a new attempt of a failed job held by this token (keeping its preview), in one statement that also
        tells why not: None for an unknown id."""
        rows = self._db.run(
            "WITH retried AS ("
            " UPDATE uploads SET status = :pending, attempt = attempt + 1, workflow_run_id = NULL, progress = NULL,"
            " error_code = NULL, error_message = NULL, processing_started_at = NULL, polled_at = NULL,"
            " completed_at = NULL, result_url = NULL, dispatched_at = now(), updated_at = now()"
            " WHERE id = :id AND session_token_hash = :hash AND status = :failed AND attempt < :max"
            " AND confirmed_at IS NOT NULL AND results_deleted_at IS NULL"
            " RETURNING attempt)"
            " SELECT session_token_hash = :hash, status, confirmed_at IS NOT NULL, attempt,"
            " results_deleted_at IS NOT NULL, (SELECT attempt FROM retried)"
            " FROM uploads WHERE id = :id",
            id=upload_id, hash=token_hash, max=max_attempts, pending=domain.PENDING, failed=domain.FAILED,
        )
        return RetryOutcome(*rows[0]) if rows else None

    # --- The email a finished job owes its person: each try one conditional statement -----------------------

    def claim_email(self, upload_id: str, attempt: int, view_token_hash: str, *, lease_seconds: float,
                    max_tries: int, retention_days: int) -> Optional[EmailClaim]:
        """Take the next try at the job's email, once: None when it is not owed (never due, sent, given up, its
        address cleared by retention, its tries used up) or another try holds it (until `lease_seconds` pass, or a
        failed try's wait). A completed job's try stores the digest of the view credential its email carries,
        expiring with the results' retention (which counts from `updated_at`, as `results_to_delete` does)."""
        rows = self._db.run(
            "UPDATE uploads SET email_tries = email_tries + 1, email_next_at = now() + make_interval(secs => :lease),"
            " view_token_hash = CASE WHEN status = :completed THEN :view ELSE view_token_hash END,"
            " view_expires_at = CASE WHEN status = :completed THEN updated_at + make_interval(days => :days)"
            " ELSE view_expires_at END"
            " WHERE id = :id AND attempt = :attempt AND status IN (:completed, :failed) AND email_due_at IS NOT NULL"
            " AND email_sent_at IS NULL AND email_given_up_at IS NULL AND email <> '' AND email_tries < :max"
            " AND (email_next_at IS NULL OR email_next_at <= now())"
            " RETURNING email, status, error_message, email_tries, view_expires_at",
            id=upload_id, attempt=attempt, view=view_token_hash, lease=lease_seconds, max=max_tries,
            days=retention_days, completed=domain.COMPLETED, failed=domain.FAILED,
        )
        return EmailClaim(*rows[0]) if rows else None

    def mark_email_sent(self, upload_id: str, attempt: int) -> bool:
        """Record that the job's email went out (the mail service accepted it)."""
        rows = self._db.run(
            "UPDATE uploads SET email_sent_at = now(), email_next_at = NULL"
            " WHERE id = :id AND attempt = :attempt AND email_sent_at IS NULL RETURNING 1",
            id=upload_id, attempt=attempt,
        )
        return bool(rows)

    def defer_email(self, upload_id: str, attempt: int, delay_seconds: float) -> None:
        """After a failed try: no other try before `delay_seconds` from now."""
        self._db.run(
            "UPDATE uploads SET email_next_at = now() + make_interval(secs => :delay)"
            " WHERE id = :id AND attempt = :attempt AND email_sent_at IS NULL AND email_given_up_at IS NULL",
            id=upload_id, attempt=attempt, delay=delay_seconds,
        )

    def give_up_email(self, upload_id: str, attempt: int) -> bool:
        """Record that the job's email will not be sent (refused for good, or out of tries)."""
        rows = self._db.run(
            "UPDATE uploads SET email_given_up_at = now(), email_next_at = NULL"
            " WHERE id = :id AND attempt = :attempt AND email_sent_at IS NULL AND email_given_up_at IS NULL"
            " RETURNING 1",
            id=upload_id, attempt=attempt,
        )
        return bool(rows)

    def emails_to_offer(self, older_than_seconds: float, max_tries: int, limit: int) -> list[tuple[str, int]]:
        """(id, attempt) of jobs owing an email that no try took or came back to within the age (a lost message,
        a worker that died mid-try): the dispatcher asks for another try, which `claim_email` decides."""
        rows = self._db.run(
            "SELECT id, attempt FROM uploads"
            " WHERE email_due_at IS NOT NULL AND email_sent_at IS NULL AND email_given_up_at IS NULL"
            " AND email <> '' AND email_tries < :max"
            " AND coalesce(email_next_at, email_due_at) < now() - make_interval(secs => :age)"
            " ORDER BY email_due_at LIMIT :limit",
            age=older_than_seconds, max=max_tries, limit=limit,
        )
        return [(row[0], row[1]) for row in rows]

    def jobs_to_dispatch(self, older_than_seconds: float, limit: int) -> list[tuple[str, int]]:
        """(id, attempt) of confirmed jobs on their way that nobody took or looked at within the age (a lost
        send, a worker that died, a polling chain that broke), marked as dispatched now; concurrent dispatchers
        take disjoint jobs."""
        rows = self._db.run(
            "UPDATE uploads SET dispatched_at = now()"
            " WHERE id IN (SELECT id FROM uploads WHERE confirmed_at IS NOT NULL AND status IN (:pending, :processing)"
            " AND coalesce(dispatched_at, confirmed_at) < now() - make_interval(secs => :age)"
            " AND (status = :pending OR coalesce(polled_at, processing_started_at) < now() - make_interval(secs => :age))"
            " ORDER BY updated_at LIMIT :limit FOR UPDATE SKIP LOCKED)"
            " RETURNING id, attempt",
            age=older_than_seconds, limit=limit, pending=domain.PENDING, processing=domain.PROCESSING,
        )
        return [(row[0], row[1]) for row in rows]

    def stuck_jobs(self, deadline_seconds: float, limit: int) -> list[tuple[str, int, Optional[str]]]:
        """(id, attempt, task) of jobs processing for longer than the deadline."""
        rows = self._db.run(
            "SELECT id, attempt, workflow_run_id FROM uploads"
            " WHERE confirmed_at IS NOT NULL AND status = :processing"
            " AND processing_started_at < now() - make_interval(secs => :deadline)"
            " ORDER BY processing_started_at LIMIT :limit",
            deadline=deadline_seconds, limit=limit, processing=domain.PROCESSING,
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def results_to_delete(self, retention_days: int, limit: int) -> list[tuple[str, list[str]]]:
        """(id, keys) of finished jobs past the results' retention whose original, preview and model remain."""
        rows = self._db.run(
            "SELECT id, original_url, coalesce(preview_url, ''), coalesce(result_url, '') FROM uploads"
            " WHERE status IN (:completed, :failed) AND results_deleted_at IS NULL"
            " AND updated_at < now() - make_interval(days => :days) ORDER BY updated_at LIMIT :limit",
            days=retention_days, limit=limit, completed=domain.COMPLETED, failed=domain.FAILED,
        )
        return [(row[0], [key for key in row[1:] if key]) for row in rows]

    def mark_results_deleted(self, upload_ids: list[str]) -> None:
        """Record that these finished jobs' objects are gone (the status then says so); a job retried meanwhile is
        left as it is."""
        if upload_ids:
            self._db.run(
                "UPDATE uploads SET results_deleted_at = now(), object_deleted_at = now()"
                " WHERE id = ANY(string_to_array(:ids, ',')) AND status IN (:completed, :failed)",
                ids=",".join(upload_ids), completed=domain.COMPLETED, failed=domain.FAILED,
            )

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
