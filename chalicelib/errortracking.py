"""Error tracking (PostHog's): every unexpected exception of a request or an event function, scrubbed, delivered
within the analytics budget, never failing what it reports on.

PostHog sends an exception's message, its frames (with their source lines) and the locals of our own frames. Any
of them may hold a session token, an Idempotency-Key, an email or a presigned URL: the request's own values are
replaced wherever they appear, and so is anything shaped like one (an address, a signed query, a long random
string), before the event leaves the process. The context travels as properties set after the scrub: the request
id, the upload id, the function and the deployed version.
"""

from __future__ import annotations

import contextvars
import logging
import re

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Shapes of what must never leave: an email address; the query of a URL (a presigned URL's credential and
# signature); a long run of token characters (session tokens, Idempotency-Keys, digests, signatures); a UUID
# (what our client sends as an Idempotency-Key). Upload ids (24 characters) and object keys stay readable.
_PATTERNS = (
    re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+\.[A-Za-z]{2,}"),
    re.compile(r"(?<=\?)[^\s'\"<>]+"),
    re.compile(r"(?i)X-Amz-(?:Credential|Signature|Security-Token)=[^\s&'\"<>]+"),
    re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
    re.compile(r"[A-Za-z0-9-]{32,}"),
)
# Locals whose names say what they hold are masked by PostHog itself before any value is looked at.
MASKED_NAMES = [r"(?i)token", r"(?i)secret", r"(?i)password", r"(?i)email", r"(?i)idempotency", r"(?i)key",
                r"(?i)url", r"(?i)hash", r"(?i)fingerprint", r"(?i)digest", r"(?i)headers", r"(?i)body",
                r"(?i)params", r"(?i)auth", r"(?i)credential"]
# The values of the request being reported (its token, key, email): set around one capture, read by the scrub.
_request_values: contextvars.ContextVar[tuple] = contextvars.ContextVar("error_tracking_values", default=())


def scrub(value, secrets=()):
    """`value` (a string, or lists and dicts of them) with the given secrets and every secret-shaped run replaced."""
    if isinstance(value, str):
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            value = value.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(item, secrets) for item in value]
    return value


def scrub_exception_event(event: dict) -> dict:
    """PostHog's before_send: an `$exception` event's properties scrubbed, except the context we set ourselves
    (`$context`, popped here); every other event passes untouched."""
    if event.get("event") != "$exception":
        return event
    properties = dict(event.get("properties") or {})
    context = properties.pop("$context", None) or {}
    event = {**event, "properties": {**scrub(properties, _request_values.get()), **context}}
    return event


class ErrorTracking:
    """Sends unexpected exceptions to PostHog's error tracking with the context needed to find them again."""

    def __init__(self, client, *, budget_seconds: float, version: str | None):
        self._client = client
        self._budget = budget_seconds
        self._version = version
        self._pending = False  # pragma: no mutate (None is as falsy as False: nothing observable changes)

    def capture(self, exc: BaseException, *, function: str, request_id: str | None = None,
                upload_id: str | None = None, secrets=(), **context) -> None:
        """Queue one exception; `secrets` are the request's own values to scrub wherever they appear."""
        properties = {"function": function, "version": self._version, "requestId": request_id,
                      "uploadId": upload_id, **context}
        token = _request_values.set(tuple(secrets))
        try:
            self._client.capture_exception(
                exc,
                distinct_id=upload_id or request_id or function,
                properties={"$process_person_profile": False,
                            "$context": {k: v for k, v in properties.items() if v is not None}},
            )
            self._pending = True
        except Exception as cause:  # error tracking must never break what it reports on
            log.warning("error tracking: could not queue %s: %s", type(exc).__name__, type(cause).__name__)
        finally:
            _request_values.reset(token)

    def flush(self) -> None:
        """Deliver what is queued, waiting at most the budget."""
        if not self._pending:
            return
        self._pending = False  # pragma: no mutate (None is as falsy as False: nothing observable changes)
        try:
            self._client.flush(timeout_seconds=self._budget)
        except Exception as exc:
            log.warning("error tracking: flush failed: %s", type(exc).__name__)


class DisabledErrorTracking:
    """What the service uses when no PostHog key is configured: exceptions go to the logs only."""

    def capture(self, exc: BaseException, *, function: str, request_id: str | None = None,
                upload_id: str | None = None, secrets=(), **context) -> None:
        """Drop the exception (it was logged already)."""

    def flush(self) -> None:
        """Nothing to send."""


def build_error_tracking(client, budget_seconds: float, version: str | None):
    """ErrorTracking on a PostHog client (see analytics.posthog_client), or DisabledErrorTracking without one."""
    if client is None:
        return DisabledErrorTracking()
    return ErrorTracking(client, budget_seconds=budget_seconds, version=version)
