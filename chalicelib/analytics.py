"""Product analytics (PostHog) that never slows a request past its budget nor breaks it."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Analytics:
    """Queues events during a request and delivers them, within a time budget, before the request ends."""

    def __init__(self, client, *, budget_seconds: float):
        self._client = client
        self._budget = budget_seconds
        self._pending = False  # pragma: no mutate (None is as falsy as False: nothing observable changes)

    def capture(self, event: str, upload_id: str, properties: dict) -> None:
        """Queue one event about an upload; the upload id is the only identity that leaves, and no person is made."""
        try:
            self._client.capture(
                event,
                distinct_id=upload_id,
                properties={**properties, "$process_person_profile": False},
            )
            self._pending = True
        except Exception as exc:  # analytics must never break a request
            log.warning("analytics: could not queue %s: %s", event, type(exc).__name__)

    def flush(self) -> None:
        """Deliver what is queued, waiting at most the budget: a frozen Lambda container would never send it."""
        if not self._pending:
            return
        self._pending = False  # pragma: no mutate (None is as falsy as False: nothing observable changes)
        try:
            self._client.flush(timeout_seconds=self._budget)
        except Exception as exc:
            log.warning("analytics: flush failed: %s", type(exc).__name__)


class DisabledAnalytics:
    """What the service uses when no PostHog key is configured."""

    def capture(self, event: str, upload_id: str, properties: dict) -> None:
        """Drop the event."""

    def flush(self) -> None:
        """Nothing to send."""


def _delivery_failed(exc: Exception, batch) -> None:
    # One line per failed batch, and a request sends at most one batch; the events themselves are never logged.
    log.warning("analytics: delivery failed (%s); %d event(s) dropped", type(exc).__name__, len(batch))


def posthog_client(api_key: str | None, host: str, budget_seconds: float):
    """The container's one PostHog client (events and error tracking), or None without a key (PostHog is then
    never imported)."""
    if not api_key:
        return None
    from posthog import Posthog

    from .errortracking import MASKED_NAMES, scrub_exception_event

    client = Posthog(
        project_api_key=api_key,
        host=host,
        timeout=budget_seconds,
        max_retries=0,
        disable_geoip=True,  # pragma: no mutate (posthog's default; explicit so an upgrade cannot turn it on)
        on_error=_delivery_failed,
        # An exception's locals help to find its cause; names that say what they hold are masked, and every
        # value that reaches the wire is scrubbed (errortracking.scrub_exception_event).
        capture_exception_code_variables=True,
        code_variables_mask_patterns=MASKED_NAMES,
        before_send=scrub_exception_event,
    )
    # The client logs its own copy of each delivery error, with the server's answer; ours is enough.
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    return client


def build_analytics(api_key: str | None, host: str, budget_seconds: float, client=None):
    """A PostHog-backed Analytics (on `client`, else a new one), or DisabledAnalytics without a key."""
    client = client or posthog_client(api_key, host, budget_seconds)
    if client is None:
        return DisabledAnalytics()
    return Analytics(client, budget_seconds=budget_seconds)
