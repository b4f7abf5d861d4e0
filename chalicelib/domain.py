"""Pure rules of an upload: request validation, ids, keys and session tokens. No I/O here."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass

from .errors import (AlreadyConfirmed, JobNotRetryable, RetryLimitReached, UnknownStatus, UploadCancelled, UploadError,
                     UploadExpired, ValidationFailed)

# The extension is part of the storage key, so it comes from this table and never from the client.
FILE_TYPES = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
}
UPLOAD_ID_LENGTH = 24
MAX_EMAIL_LENGTH = 254
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# An Idempotency-Key is a secret: with the body, it replays the create and takes the job over. Our client's keys
# are UUIDs (36 characters); 32 admits 128-bit hex keys too and refuses the short, guessable ones.
MIN_IDEMPOTENCY_KEY_LENGTH = 32
# Tokens we mint are 36 characters; a longer header is refused without touching the database.
MAX_TOKEN_LENGTH = 128
# How much of an object the confirm reads: more than any signature below needs.
SIGNATURE_BYTES = 64
# ISO-BMFF major brands of HEIC/HEIF images (ISO/IEC 23008-12): still images, sequences, and the generic ones.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"})


# --- The job's lifecycle, defined once ------------------------------------------------------------------------
# The values `uploads.status` may hold. Migration 0005's named CHECK (uploads_status_check), the OpenAPI JobStatus
# enum and the processing page's texts list the same values; tests/integration/test_lifecycle.py compares all four.
PENDING = "pending"
PROCESSING = "processing"  # processing, completed and failed are written by the processing worker (worker.py)
COMPLETED = "completed"
FAILED = "failed"
EXPIRED = "expired"
CANCELLED = "cancelled"
STATUSES = (PENDING, PROCESSING, COMPLETED, FAILED, EXPIRED, CANCELLED)
# A confirmed job is stored as `pending` with `confirmed_at` set (the API answers "status": "pending" with a
# confirmedAt), so "confirmed" is a stage of the lifecycle but never a stored status.
CONFIRMED = "confirmed"
# Which stage may move to which; the API's client steps are `confirmed` (the confirm) and `cancelled` (the cancel),
# the sweep's is `expired`; the worker moves a confirmed job to `processing` and on (the dead-letter path may fail
# a confirmed job that never started). Stages with no way out are final. A failed job is final too, but its owner
# may start it again as a new attempt (the retry, see ensure_retryable), which makes it confirmed once more.
TRANSITIONS = {
    PENDING: frozenset({CONFIRMED, EXPIRED, CANCELLED}),
    CONFIRMED: frozenset({PROCESSING, FAILED}),
    PROCESSING: frozenset({COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
    EXPIRED: frozenset(),
    CANCELLED: frozenset(),
}
# Jobs whose person needs reaching no more (their email is cleared after the retention period): the final stages.
FINISHED = tuple(status for status in STATUSES if not TRANSITIONS[status])


def stage_of(status: str, confirmed: bool) -> str:
    """The lifecycle stage of a stored job; a status the lifecycle does not define raises UnknownStatus."""
    if status not in STATUSES:
        raise UnknownStatus(status)
    return CONFIRMED if status == PENDING and confirmed else status


def refusal(stage: str) -> UploadError:
    """Why a job in this stage can take no client step (confirm, cancel, a replay of its create) any more."""
    if stage == EXPIRED:
        return UploadExpired()
    if stage == CANCELLED:
        return UploadCancelled()
    if stage in TRANSITIONS and stage != PENDING:
        return AlreadyConfirmed()
    # A pending job refused a step only when a concurrent change made it so, or a caller is wrong: not the user's.
    return UploadError()


def ensure_may(stage: str, step: str) -> None:
    """Raise the refusal of this stage unless the lifecycle lets it move to `step`."""
    if step not in TRANSITIONS[stage]:
        raise refusal(stage)


def ensure_retryable(stage: str, attempt: int, max_attempts: int) -> None:
    """A failed job may be processed again by its owner, up to `max_attempts` attempts in all."""
    if stage != FAILED:
        raise JobNotRetryable()
    if attempt >= max_attempts:
        raise RetryLimitReached(max_attempts)


def ensure_visible(stage: str) -> None:
    """A cancelled job is gone for its owner: its status answers 410 UPLOAD_CANCELLED, like every other step."""
    if stage == CANCELLED:
        raise UploadCancelled()


@dataclass(frozen=True)
class UploadRequest:
    """A validated, normalised `POST /api/upload` body."""

    email: str
    file_type: str
    file_size: int

    @property
    def extension(self) -> str:
        return FILE_TYPES[self.file_type]

    def fingerprint(self, secret: str) -> str:
        """A stable digest of the request, to tell an idempotent replay from a reused key. Keyed with the server's
        secret: a plain hash of email, type and size would let whoever reads the table test a guessed email."""
        return digest(secret, "fingerprint", self._canonical())

    def legacy_fingerprint(self) -> str:
        """The unkeyed digest rows written before migration 0006 hold (matched only to replay such a row)."""
        return hashlib.sha256(self._canonical().encode()).hexdigest()

    def _canonical(self) -> str:
        # A list has no key separator: mutating ":" changes nothing.
        return json.dumps([self.email, self.file_type, self.file_size], separators=(",", ":"))  # pragma: no mutate


def parse_upload_request(body: dict, *, max_bytes: int) -> UploadRequest:
    """Validate a decoded JSON body; the error message names the offending field."""
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    email = body.get("email")
    if not isinstance(email, str) or not email.strip():
        raise ValidationFailed("email: a non-empty string is required.")
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationFailed(f"email: must be at most {MAX_EMAIL_LENGTH} characters.")
    # Imported here: only the create route needs it, and it costs every cold start ~20 ms otherwise.
    from email_validator import EmailNotValidError, validate_email

    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(f"email: not a valid email address ({exc}).") from None
    file_type = body.get("fileType")
    if not isinstance(file_type, str) or file_type not in FILE_TYPES:
        raise ValidationFailed("fileType: must be one of " + ", ".join(FILE_TYPES) + ".")
    file_size = body.get("fileSize")
    # JSON has one number type: 1024.0 is the integer 1024 (as JSON Schema says), 1024.5 is not.
    if isinstance(file_size, float) and file_size.is_integer():
        file_size = int(file_size)
    # bool is an int subclass in Python; JSON true must not pass as a size.
    if not isinstance(file_size, int) or isinstance(file_size, bool):
        raise ValidationFailed("fileSize: an integer number of bytes is required.")
    if not 1 <= file_size <= max_bytes:
        raise ValidationFailed(f"fileSize: must be between 1 and {max_bytes} bytes.")
    return UploadRequest(email=email, file_type=file_type, file_size=file_size)


def parse_idempotency_key(value: str | None) -> str | None:
    """Accept 32-255 printable ASCII characters, or no key at all."""
    if value is None:
        return None
    if not MIN_IDEMPOTENCY_KEY_LENGTH <= len(value) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(
            " " <= ch <= "~" for ch in value):
        raise ValidationFailed(f"Idempotency-Key: must be {MIN_IDEMPOTENCY_KEY_LENGTH} to {MAX_IDEMPOTENCY_KEY_LENGTH}"
                               " printable ASCII characters (a random value such as a UUID).")
    return value


def digest(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 (hex) of `value` under the server's secret, separated by `purpose` so that one kind of digest
    never matches another. Without the secret, a digest cannot be tested against a guessed email or key."""
    message = f"{purpose}\0{value}".encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8", "surrogatepass"), message, hashlib.sha256).hexdigest()


def idempotency_key_digest(secret: str, key: str) -> str:
    """What `uploads.idempotency_key` holds for a key: its HMAC, tagged, never the key itself."""
    return "hmac:" + digest(secret, "idempotency-key", key)


def legacy_idempotency_key_digest(key: str) -> str:
    """What migration 0006 left in place of a key stored in clear: its plain SHA-256, tagged (SQL has no secret)."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_upload_id() -> str:
    """A fresh cuid2 id."""
    from cuid2 import create_id

    return create_id(UPLOAD_ID_LENGTH)  # pragma: no mutate (cuid2's default length is also 24)


def is_upload_id(value: str) -> bool:
    """True for strings shaped like the ids this service mints (so nothing else reaches SQL or a key)."""
    from cuid2 import is_cuid

    return is_cuid(value, min_length=UPLOAD_ID_LENGTH, max_length=UPLOAD_ID_LENGTH)


def object_key(upload_id: str, extension: str) -> str:
    """The storage key of an upload's original photo."""
    return f"uploads/{upload_id}/original.{extension}"


def result_key(upload_id: str, attempt: int, name: str) -> str:
    """The storage key of one of a job's results (`model.glb`, `preview.jpg`), copied from the processing service;
    one folder per attempt, so that a late write of an earlier attempt never replaces a later one's."""
    return f"results/{upload_id}/{attempt}/{name}"


def mint_token() -> str:
    """A new session token: a random UUID, like the browser's crypto.randomUUID()."""
    return str(uuid.uuid4())


def mint_view_token() -> str:
    """A new read-only view credential (the emailed link's): 256 random bits, URL-safe, never a session token."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest kept at rest instead of the token."""
    # Codec names are case-insensitive: "UTF-8" here would be the same codec.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()  # pragma: no mutate


def token_matches(token: str, token_hash: str) -> bool:
    """Compare a presented token with a stored hash in constant time."""
    return hmac.compare_digest(hash_token(token), token_hash)


def matches_declared_type(first_bytes: bytes, file_type: str) -> bool:
    """True when an object's first bytes carry the signature of the type it was declared as.

    A table of four signatures rather than a detection library: the question is "is this the declared type",
    not "what is this", and the table costs nothing at cold start.
    """
    head = first_bytes
    if file_type == "image/jpeg":
        return head[:3] == b"\xff\xd8\xff"
    if file_type == "image/png":
        return head[:8] == b"\x89PNG\r\n\x1a\n"
    if file_type == "image/webp":
        return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if file_type == "image/heic":
        # An ISO-BMFF file starts with its `ftyp` box: 4-byte size (at least 16), `ftyp`, major brand, ...
        return (len(head) >= 12
                and int.from_bytes(head[:4], "big")  # pragma: no mutate (big-endian is from_bytes' default order)
                >= 16 and head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS)
    return False


def rate_limit_key(secret: str, scope: str, value: str, source_ip: str | None = None) -> str:
    """What the rate limits count by: an HMAC, so the counters hold no address or email, nor a digest of one that
    a guess could be tested against.

    Emails are compared lower-cased: `Maya@Example.com` and `maya@example.com` share one limit. The email limit
    counts per email *and* client address, so that nobody can use up another client's quota for an address.
    """
    normalised = value.strip().lower() if scope == "email" else value.strip()
    if scope == "email":
        normalised += "\0" + (source_ip or "").strip()
    return digest(secret, "rate-limit:" + scope, normalised)


# --- Processing results: none of the processing service's bytes is trusted -----------------------------------
GLB_MAGIC = b"glTF"
GLB_VERSION = 2
# What a preview may be, by its first bytes, and the extension it is stored under.
PREVIEW_TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def allowed_output_host(url: str, hosts: tuple[str, ...]) -> bool:
    """True for an https URL on one of `hosts` (`name` or `*.suffix`), or plain http on loopback when loopback is
    listed: the worker fetches what the processing service names, so nothing else (the Lambda runtime's own API,
    a private address) may be named."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" and not (parts.scheme == "http" and host in ("127.0.0.1", "localhost")):
        return False
    return any(host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])) for allowed in hosts)


def is_glb(data: bytes) -> bool:
    """A binary glTF 2.0 file: magic `glTF`, version 2, and a header length that is the file's own length."""
    return (len(data) >= 20 and data[:4] == GLB_MAGIC
            and int.from_bytes(data[4:8], "little") == GLB_VERSION
            and int.from_bytes(data[8:12], "little") == len(data))


def preview_type(data: bytes) -> str | None:
    """The media type of a preview image by its signature (JPEG, PNG or WebP), or None for anything else."""
    return next((kind for kind in PREVIEW_TYPES if matches_declared_type(data[:SIGNATURE_BYTES], kind)), None)


# Why a job failed, as stable codes (analytics, logs) and the words its person reads. The processing service's own
# text never reaches the person: it goes to the log.
FAILURE_MESSAGES = {
    "provider_failed": "We couldn't turn this photo into a 3D model. Try again, or upload another photo.",
    "provider_cancelled": "Processing of this photo was stopped before it finished. Try again.",
    "bad_output": "We couldn't turn this photo into a 3D model. Try again, or upload another photo.",
    "timed_out": "Processing took too long and was stopped. Try again.",
    "undeliverable": "We couldn't process this photo because of a problem on our side. Try again in a few minutes.",
    "original_missing": "The photo is no longer stored, so it can't be processed. Upload it again.",
}


def failure_message(reason: str) -> str:
    """What the person reads for a failure reason (see FAILURE_MESSAGES)."""
    return FAILURE_MESSAGES[reason]


# Failures that another attempt of the same photo cannot mend: the person is told by email at once.
FINAL_FAILURES = frozenset({"original_missing"})


def failed_for_good(reason: str, attempt: int, max_attempts: int) -> bool:
    """True when a failed attempt ends the job: no retry is left, or none would help. Only then does the job's
    person get the failure email (a failure they can retry is shown on the processing page)."""
    return attempt >= max_attempts or reason in FINAL_FAILURES
