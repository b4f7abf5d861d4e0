"""The service's outside systems, built on first use and kept for the life of the container.

Secrets held in SSM rotate. A container re-reads them when the database or storage rejects its credentials
(PostgreSQL 28P01; R2 InvalidAccessKeyId or SignatureDoesNotMatch) and retries that one call, and when they
are older than SECRETS_MAX_AGE_SECONDS (a container that only presigns URLs never hears a refusal).
Both retries are safe: a database authentication failure happens at connect, before any statement ran; a
refused storage request did nothing on the server.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import cached_property

from .config import Settings
from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# Storage errors that mean "these credentials are not (or no longer) valid". A HEAD answer has no body, so
# S3 can only say 403 there.
_STORAGE_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}
# Several threads (or requests) refused at once need one SSM read, not one each.
REFRESH_MIN_INTERVAL_SECONDS = 1.0
# After a failed scheduled re-read, the next one waits this long.
SSM_RETRY_SECONDS = 30.0


class Dependencies:
    """Lazily built, reused dependencies: a warm Lambda keeps its connections and clients."""

    def __init__(self, settings: Settings, *, fetch=None, clock=time.monotonic):
        self.settings = settings
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: Settings | None = None
        # float() reads "inf" in any case, so a change of case is no change.
        self._fetched_at = float("-inf")  # pragma: no mutate
        self._refreshed_at = float("-inf")  # pragma: no mutate
        if not settings.posthog_api_key and not any(n == "POSTHOG_API_KEY" for n, _ in settings.ssm_parameters):
            log.info("analytics: off (POSTHOG_API_KEY is not set)")

    @property
    def secrets(self) -> Settings:
        """The settings with secrets fetched from SSM: on first need, then again once they are older than
        the maximum age."""
        with self._lock:
            stale = self.settings.ssm_parameters and (
                self._clock() - self._fetched_at > self.settings.secrets_max_age_seconds)
            if self._secrets is None:
                self._load_secrets(initial=True)
            elif stale:
                try:
                    self._load_secrets(initial=False)
                except Exception as exc:
                    # SSM is down or throttling: the secrets in hand still worked a moment ago. Keep serving with
                    # them and ask SSM again in a while, rather than failing every request and calling it on each.
                    self._fetched_at = self._clock() - self.settings.secrets_max_age_seconds + SSM_RETRY_SECONDS
                    log.error("re-reading secrets failed; keeping the current ones for now: %s",
                              type(exc).__name__)
            return self._secrets

    def refresh_secrets(self, why: str) -> bool:
        """Re-read the secrets after a refusal; True when the caller should retry (something may have changed)."""
        if not self.settings.ssm_parameters:
            return False  # given directly: nothing to re-read
        with self._lock:
            if self._clock() - self._refreshed_at < REFRESH_MIN_INTERVAL_SECONDS:
                return True  # another caller just re-read them after a refusal: retry with those
            self._refreshed_at = self._clock()
            before = self._secrets
            try:
                self._load_secrets(initial=False)  # pragma: no mutate (`initial` only documents the call)
            except Exception as exc:  # SSM unreachable: keep what we have; the refusal stands
                log.error("re-reading secrets failed: %s", type(exc).__name__, extra={"cause": why})
                return False
            log.warning("secrets re-read after a refusal", extra={"cause": why,
                                                                   "changed": self._secrets != before})
            return True

    def _load_secrets(self, *, initial: bool) -> None:
        from .config import fetch_ssm_parameters

        self._secrets = self.settings.with_secrets(self._fetch or fetch_ssm_parameters)
        self._fetched_at = self._clock()

    @cached_property
    def database(self):
        return rotating_database(self)

    @cached_property
    def uploads(self):
        from .repository import Uploads

        return Uploads(self.database)

    @cached_property
    def storage(self):
        from .storage import Storage

        return Storage(RotatingS3Client(self), self.settings.r2_bucket)

    @cached_property
    def posthog(self):
        """The container's one PostHog client (None without a key), for analytics and error tracking alike.

        Its key comes from the secrets if they are loaded already; otherwise that one parameter is read alone,
        so that a function that may read no other secret (migrate) still reports its failures."""
        from .analytics import posthog_client

        s = self.settings
        key, parameter = s.posthog_api_key, dict(s.ssm_parameters).get("POSTHOG_API_KEY")
        if key is None and parameter:
            if self._secrets is not None:
                key = self._secrets.posthog_api_key
            else:
                from .config import fetch_ssm_parameters

                key = (self._fetch or fetch_ssm_parameters)([parameter])[parameter]
        return posthog_client(key, s.posthog_host, s.analytics_budget_seconds)

    @cached_property
    def analytics(self):
        from .analytics import build_analytics

        s = self.secrets
        return build_analytics(s.posthog_api_key, s.posthog_host, s.analytics_budget_seconds, client=self.posthog)

    @cached_property
    def error_tracking(self):
        from .errortracking import build_error_tracking

        return build_error_tracking(self.posthog, self.settings.analytics_budget_seconds, self.settings.version)

    @cached_property
    def queue(self):
        """The hand-off queue, or None on a stack without one (JOBS_QUEUE_URL unset)."""
        if not self.settings.jobs_queue_url:
            return None
        from .queue import JobQueue, sqs_client

        return JobQueue(sqs_client(timeout=self.settings.queue_timeout_seconds), self.settings.jobs_queue_url)

    @cached_property
    def processing(self):
        """The processing service (Replicate's API), or None where this function's settings name none."""
        s = self.secrets
        if not s.processing_configured:
            return None
        import json

        from .processing.replicate import Replicate

        return Replicate(base_url=s.processing_api_url, token=s.processing_api_token,
                         model_version=s.processing_model_version, timeout=s.processing_timeout_seconds,
                         image_input=s.processing_image_input, extra_input=json.loads(s.processing_extra_input))

    @cached_property
    def mailer(self):
        """What sends finished jobs' emails: an SMTP server where SMTP_HOST names one, else Amazon SES; None where
        email is off (no EMAIL_FROM)."""
        s = self.settings
        if not s.email_configured:
            return None
        if s.smtp_host:
            from .mail.smtp import SmtpMailer

            return SmtpMailer(host=s.smtp_host, port=s.smtp_port, sender=s.email_from,
                              timeout=s.email_timeout_seconds)
        from .mail.ses import SesMailer, sesv2_client

        return SesMailer(sesv2_client(timeout=s.email_timeout_seconds), sender=s.email_from,
                         configuration_set=s.ses_configuration_set)

    def built(self, name: str):
        """The dependency if it was built already, else None (so a request never builds one just to flush it)."""
        return self.__dict__.get(name)


def rotating_database(deps: Dependencies):
    """A Database that opens each new connection with the current secrets and, refused with 28P01, re-reads
    them and tries once more (pg8000 is imported here, on first need, not at cold start)."""
    from .db import Database

    class RotatingDatabase(Database):
        def _open(self):
            self._settings = deps.secrets.database
            try:
                return super()._open()
            except DatabaseUnavailable as exc:
                if not _is_password_refused(exc.__cause__) or not deps.refresh_secrets("database 28P01"):
                    raise
            self._settings = deps.secrets.database
            return super()._open()

    return RotatingDatabase(deps.secrets.database, timeout=deps.settings.db_timeout_seconds)


class RotatingS3Client:
    """A boto3 S3 client that follows rotated keys: rebuilt when the secrets change, and a call refused for
    its credentials is retried once after re-reading them."""

    def __init__(self, deps: Dependencies):
        self._deps = deps
        # Never equal to a keys tuple, so the first call builds the client: any other non-tuple is the same.
        self._keys = None  # pragma: no mutate
        self._client = None  # pragma: no mutate
        self._lock = threading.Lock()

    def current(self):
        """The client for the current keys (building a new one when they changed)."""
        from .storage import s3_client

        s = self._deps.secrets
        keys = (s.r2_endpoint_url, s.r2_access_key_id, s.r2_secret_access_key)
        with self._lock:
            if keys != self._keys:
                self._client = s3_client(endpoint_url=s.r2_endpoint_url, access_key_id=s.r2_access_key_id,
                                         secret_access_key=s.r2_secret_access_key, timeout=s.storage_timeout_seconds)
                self._keys = keys
            return self._client

    def __getattr__(self, name):
        attribute = getattr(self.current(), name)
        if not callable(attribute) or name == "generate_presigned_url":
            return attribute  # presigning makes no request: nothing can be refused

        def call(*args, **kwargs):
            from botocore.exceptions import ClientError

            try:
                return getattr(self.current(), name)(*args, **kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in _STORAGE_AUTH_CODES or not self._deps.refresh_secrets(f"storage {code}"):
                    raise
            return getattr(self.current(), name)(*args, **kwargs)

        return call


def _is_password_refused(exc) -> bool:
    detail = exc.args[0] if exc is not None and exc.args and isinstance(exc.args[0], dict) else {}
    return detail.get("C") == "28P01"
