"""Domain errors: what went wrong, in words a user can read. They know nothing of HTTP."""


class UploadError(Exception):
    """Base of every error the use cases raise on purpose."""

    code = "INTERNAL_ERROR"
    message = "Something went wrong on our side. Please try again."

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message


class ValidationFailed(UploadError):
    """The request is malformed; the message names the field."""

    code = "VALIDATION_ERROR"


class MissingToken(UploadError):
    """The X-Session-Token header is absent."""

    code = "MISSING_TOKEN"
    message = "This request needs the session token of your upload."


class InvalidToken(UploadError):
    """The session token does not belong to this upload."""

    code = "INVALID_TOKEN"
    message = "This session token is not valid for this upload."


class UploadNotFound(UploadError):
    """No upload has this id (or the id is malformed)."""

    code = "UPLOAD_NOT_FOUND"
    message = "Upload not found. Please try again."


class UploadExpired(UploadError):
    """The upload was abandoned and has been cleaned up."""

    code = "UPLOAD_EXPIRED"
    message = "This upload has expired. Please upload your photo again."


class UploadCancelled(UploadError):
    """The upload was cancelled by its owner."""

    code = "UPLOAD_CANCELLED"
    message = "This upload was cancelled. Please start a new upload."


class UnknownStatus(UploadError):
    """A job holds a status the lifecycle does not define: a bug or a schema ahead of the code, never the user's."""

    def __init__(self, status: object):
        super().__init__()
        self.status = status


class AlreadyConfirmed(UploadError):
    """The upload was confirmed before."""

    code = "UPLOAD_ALREADY_CONFIRMED"
    message = "This upload has already been processed."


class IdempotencyKeyReused(UploadError):
    """The Idempotency-Key was used before with a different request."""

    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used for a different upload."


class UploadNotVerified(UploadError):
    """The object is missing from storage or differs from what was declared.

    `reason` says which check failed, for the logs only (the user sees the same message for each):
    "missing", "size", "type", "encoding" (stored with a Content-Encoding), "disposition" (stored with a
    Content-Disposition) or "bytes".
    """

    code = "UPLOAD_NOT_VERIFIED"
    message = "We couldn't verify your upload. Let's try again!"
    REASONS = ("missing", "size", "type", "encoding", "disposition", "bytes")

    def __init__(self, message: str | None = None, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None and reason not in self.REASONS:
            raise ValueError(f"unknown reason {reason!r}")
        self.reason = reason


class StorageUnavailable(UploadError):
    """Object storage could not be reached or failed."""

    code = "STORAGE_UNAVAILABLE"
    message = "We couldn't verify your upload. Let's try again!"


class DatabaseUnavailable(UploadError):
    """PostgreSQL could not be reached or failed."""

    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable. Please try again in a moment."


class UnsupportedMediaType(UploadError):
    """The body is not declared as JSON."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "The request body must be sent as application/json."


class PayloadTooLarge(UploadError):
    """The request body is larger than any valid request."""

    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large."


class RateLimited(UploadError):
    """Too many uploads were created recently from this client or for this email."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after_seconds: int):
        self.retry_after_seconds = max(1, int(retry_after_seconds))
        minutes = -(-self.retry_after_seconds // 60)
        wait = "1 minute" if minutes == 1 else f"{minutes} minutes"
        super().__init__(f"Too many uploads right now. Please try again in {wait}.")


class SettingsUnavailable(UploadError):
    """Settings or secrets could not be resolved (SSM unreachable, a parameter missing): nothing can be served."""

    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable. Please try again in a moment."


class DatabaseOutcomeUnknown(DatabaseUnavailable):
    """A statement was sent and no answer came back in time: it may have run. Never resent automatically."""


class JobNotRetryable(UploadError):
    """A retry of a job that has not failed."""

    code = "JOB_NOT_RETRYABLE"
    message = "Only a job whose processing failed can be retried."


class RetryLimitReached(UploadError):
    """A failed job that was tried as often as allowed."""

    code = "RETRY_LIMIT_REACHED"

    def __init__(self, max_attempts: int):
        super().__init__(f"This photo was tried {max_attempts} times; upload it again to start over.")


class ProcessingUnavailable(UploadError):
    """The processing service failed to answer (5xx, 429, timeout) after the retries: the step is tried later."""

    code = "PROCESSING_UNAVAILABLE"
    message = "The processing service is unavailable; please try again in a moment."


class BadProcessingOutput(UploadError):
    """An output of the processing service that is not what it claims to be, or is too large."""

    code = "BAD_PROCESSING_OUTPUT"
    message = "The processing service returned an unusable result."


class EmailUnavailable(UploadError):
    """The mail service did not take the message now (unreachable, timed out, throttled, 4xx): tried again later."""

    code = "EMAIL_UNAVAILABLE"
    message = "The email could not be sent now."


class EmailRejected(UploadError):
    """The mail service refused the message for good (an address it will not deliver to): never tried again."""

    code = "EMAIL_REJECTED"
    message = "The email was refused."
