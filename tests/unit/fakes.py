"""In-memory stand-ins for the outside systems, for unit tests that do no I/O."""

import math
from dataclasses import replace
from datetime import datetime, timezone

from chalicelib.errors import DatabaseOutcomeUnknown, DatabaseUnavailable
from chalicelib import domain
from chalicelib.repository import CancelOutcome, CreateOutcome, ReplayConflict, UploadRecord
from chalicelib.storage import ObjectInfo


# What a real file of each type starts with, for objects the tests do not spell out.
SIGNATURES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xe0",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "image/heic": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",
}


class FakeUploads:
    def __init__(self):
        self.rows = {}
        self.down = False
        self.hits = {}  # (scope, key) -> times of admitted creates
        self.clock = lambda: datetime.now(timezone.utc).timestamp()
        # Name of a method whose next call commits and then loses its answer, as a timed-out statement does.
        self.lose_answer_of = None

    def _check(self):
        if self.down:
            raise DatabaseUnavailable()

    def _answer(self, method, result):
        if self.lose_answer_of == method:
            self.lose_answer_of = None
            raise DatabaseOutcomeUnknown()
        return result

    def create(self, *, upload_id, email, token_hash, key, file_type, file_size, fingerprint, idempotency_key,
               limits=(), legacy_idempotency_key=None, legacy_fingerprint=None):
        self._check()
        existing = next((r for r in self.rows.values() if idempotency_key and r["idem"] == idempotency_key), None)
        if existing is None:
            for limit in limits:
                now = self.clock()
                kept = [t for t in self.hits.get((limit.scope, limit.key), []) if t > now - limit.seconds]
                if len(kept) >= limit.count:
                    wait = max(1, math.ceil(kept[-limit.count] + limit.seconds - now))
                    return CreateOutcome(None, False, retry_after_seconds=wait)
                self.hits[(limit.scope, limit.key)] = kept + [now]
        if existing:
            record = existing["record"]
            if existing["fingerprint"] != fingerprint or record.confirmed_at or record.status != "pending":
                return CreateOutcome(None, False)
            existing["record"] = replace(record, token_hash=token_hash)
            return CreateOutcome(existing["record"], False)
        record = UploadRecord(upload_id, token_hash, key, file_type, file_size, "pending",
                              datetime.now(timezone.utc), None)
        self.rows[upload_id] = {"record": record, "idem": idempotency_key, "fingerprint": fingerprint, "email": email,
                                "owed": None}
        return self._answer("create", CreateOutcome(record, True))

    def replay_conflict(self, idempotency_key, fingerprint, legacy_idempotency_key=None, legacy_fingerprint=None):
        row = next((r for r in self.rows.values() if r["idem"] == idempotency_key), None)
        if row is None:
            return None
        return ReplayConflict(row["fingerprint"] == fingerprint, row["record"].confirmed_at is not None,
                              row["record"].status)

    def get(self, upload_id):
        self._check()
        row = self.rows.get(upload_id)
        return row and row["record"]

    def mark_confirmed(self, upload_id, token_hash, etag):
        self._check()
        record = self.get(upload_id)
        if not record or record.token_hash != token_hash or record.confirmed_at or record.status != "pending":
            return None
        self.rows[upload_id]["etag"] = etag
        self.rows[upload_id]["record"] = replace(record, confirmed_at=datetime.now(timezone.utc))
        return self._answer("mark_confirmed", self.rows[upload_id]["record"])

    def cancel(self, upload_id, token_hash):
        self._check()
        row = self.rows.get(upload_id)
        if row is None:
            return None
        record = row["record"]
        owned = record.token_hash == token_hash
        cancelled = owned and record.status == domain.PENDING and record.confirmed_at is None
        if cancelled:
            row["record"] = replace(record, status=domain.CANCELLED)
        outcome = CancelOutcome(owned, record.status, record.confirmed_at is not None, record.key, row["owed"],
                                cancelled)
        return self._answer("cancel", outcome)

    def owe_report(self, upload_id, token_hash, event):
        self._check()
        row = self.rows.get(upload_id)
        if not row or row["record"].token_hash != token_hash:
            return
        record = row["record"]
        if event == "cancelled":
            in_state = record.status == domain.CANCELLED
        else:
            in_state = (record.confirmed_at is not None) == (event == "confirmed")
        if in_state:
            row["owed"] = event

    def claim_owed_report(self, upload_id, token_hash, event):
        self._check()
        row = self.rows.get(upload_id)
        if row and row["record"].token_hash == token_hash and row["owed"] == event:
            row["owed"] = None
            return row["record"]
        return None

    def forget_unseen(self, upload_id):
        self._check()
        row = self.rows.get(upload_id)
        if row and row["idem"] is None and row["record"].confirmed_at is None:
            del self.rows[upload_id]

    def ping(self):
        self._check()


class FakeStorage:
    """Objects in a dict; `failure` (an exception) is raised by every call that reaches storage; `peeks` records
    each peek's arguments by keyword, `deleted` each deleted key."""

    def __init__(self):
        self.objects = {}
        self.failure = None
        self.peeks = []
        self.deleted = []

    def presign_put(self, key, *, content_type, content_length, expires_in):
        return f"https://storage.test/{key}?type={content_type}&length={content_length}&ttl={expires_in}"

    def presign_get(self, key, *, expires_in):
        return f"https://storage.test/{key}?get&ttl={expires_in}"

    def peek(self, key, length):
        self.peeks.append({"key": key, "length": length})
        if self.failure:
            raise self.failure
        stored = self.objects.get(key)
        return stored and replace(stored, first_bytes=stored.first_bytes[:length])

    def put(self, key, size, content_type, first_bytes=None):
        if first_bytes is None:
            first_bytes = SIGNATURES.get(content_type, b"")
        self.objects[key] = ObjectInfo(size, content_type, etag=f'"etag-of-{key}"', first_bytes=first_bytes)

    def delete(self, key):
        if self.failure:
            raise self.failure
        self.deleted.append(key)
        self.objects.pop(key, None)

    def ping(self):
        if self.failure:
            raise self.failure


class FakeAnalytics:
    def __init__(self):
        self.events = []
        self.flushes = 0

    def capture(self, event, upload_id, properties):
        self.events.append((event, upload_id, properties))

    def flush(self):
        self.flushes += 1


class FakeErrorTracking:
    def __init__(self):
        self.captured = []  # (exception, {keyword: value})
        self.flushes = 0

    def capture(self, exc, **context):
        self.captured.append((exc, context))

    def flush(self):
        self.flushes += 1


class FakeQueue:
    """Sent messages as (upload id, attempt, delay seconds); `failure` is raised by every send."""

    def __init__(self):
        self.sent = []
        self.failure = None

    def send(self, upload_id, attempt, *, delay_seconds=0, notify=False):
        if self.failure:
            raise self.failure
        self.sent.append((upload_id, attempt, delay_seconds) + (("notify",) if notify else ()))


class FakeDeps:
    def __init__(self, settings):
        self.settings = settings
        self.secrets = settings
        self.uploads = FakeUploads()
        self.storage = FakeStorage()
        self.analytics = FakeAnalytics()
        self.error_tracking = FakeErrorTracking()
        self.queue = FakeQueue()
        self.processing = None

    def built(self, name):
        return getattr(self, name)


class SweepUploads:
    """What the abandoned-upload sweep asks of the uploads table, recorded as (method, {keyword: value}); objects
    handed out in batches."""

    def __init__(self, keys=(), emails_cleared=3):
        self.keys, self.emails_cleared, self.calls = list(keys), emails_cleared, []

    def forget_rate_limits(self, older_than_seconds):
        self.calls.append(("forget_rate_limits", {"older_than_seconds": older_than_seconds}))

    def expire_abandoned(self, older_than_seconds):
        self.calls.append(("expire_abandoned", {"older_than_seconds": older_than_seconds}))
        return 7

    def objects_to_delete(self, limit, url_ttl_seconds):
        self.calls.append(("objects_to_delete", {"limit": limit, "url_ttl_seconds": url_ttl_seconds}))
        return [(f"id{i}", key) for i, key in enumerate(self.keys[:limit])]

    def mark_objects_deleted(self, upload_ids):
        self.calls.append(("mark_objects_deleted", {"upload_ids": upload_ids}))
        self.keys = self.keys[len(upload_ids):]

    def clear_old_emails(self, older_than_days):
        self.calls.append(("clear_old_emails", {"older_than_days": older_than_days}))
        return self.emails_cleared

    def results_to_delete(self, retention_days, limit):
        self.calls.append(("results_to_delete", {"retention_days": retention_days, "limit": limit}))
        return []

    def mark_results_deleted(self, upload_ids):
        self.calls.append(("mark_results_deleted", {"upload_ids": upload_ids}))


class FakeEmailJobs:
    """What the email's use cases ask of the uploads table, on finished jobs held in memory; `now` is the clock
    the statements' conditions read (a test moves it on)."""

    def __init__(self):
        self.jobs = {}
        self.now = 1000.0

    def add(self, upload_id, *, status="completed", attempt=1, email="maya@example.com", error_message=None,
            due=True):
        self.jobs[upload_id] = {"status": status, "attempt": attempt, "email": email, "error_message": error_message,
                                "due": due, "next_at": None, "tries": 0, "sent": False, "given_up": False,
                                "view_token_hash": None}

    def fail(self, upload_id, attempt, reason, message, task_id=None, for_good=False):
        job = self.jobs[upload_id]
        if job["attempt"] != attempt or job["status"] not in ("pending", "processing"):
            return None
        job.update(status="failed", error_message=message, due=for_good)
        now = datetime.now(timezone.utc)
        from chalicelib.repository import Finished
        return Finished(now, now)

    def claim_email(self, upload_id, attempt, view_token_hash, *, lease_seconds, max_tries, retention_days):
        from chalicelib.repository import EmailClaim
        job = self.jobs.get(upload_id)
        if (job is None or job["attempt"] != attempt or job["status"] not in ("completed", "failed")
                or not job["due"] or job["sent"] or job["given_up"] or job["email"] == ""
                or job["tries"] >= max_tries or (job["next_at"] is not None and job["next_at"] > self.now)):
            return None
        job["tries"] += 1
        job["next_at"] = self.now + lease_seconds
        expires = None
        if job["status"] == "completed":
            job["view_token_hash"] = view_token_hash
            expires = datetime(2027, 1, 3, 12, 0, tzinfo=timezone.utc)
        return EmailClaim(job["email"], job["status"], job["error_message"], job["tries"], expires)

    def mark_email_sent(self, upload_id, attempt):
        self.jobs[upload_id].update(sent=True, next_at=None)
        return True

    def defer_email(self, upload_id, attempt, delay_seconds):
        self.jobs[upload_id]["next_at"] = self.now + delay_seconds

    def give_up_email(self, upload_id, attempt):
        self.jobs[upload_id].update(given_up=True, next_at=None)
        return True


class FakeMailer:
    """Messages sent, in order; each exception in `failures` is raised by one send, in turn."""

    def __init__(self, failures=()):
        self.sent = []
        self.failures = list(failures)

    def send(self, message):
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


class FakeNotifyQueue(FakeQueue):
    """Sent messages as (upload id, attempt, delay seconds, notify)."""

    def send(self, upload_id, attempt, *, delay_seconds=0, notify=False):
        if self.failure:
            raise self.failure
        self.sent.append((upload_id, attempt, delay_seconds, notify))
