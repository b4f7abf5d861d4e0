"""The hand-off to processing: an Amazon SQS standard queue behind the domain's verbs."""

from __future__ import annotations

import json
import logging
from typing import NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from .errors import ProcessingUnavailable

log = logging.getLogger(__name__)
# SQS's own ceiling for a message's delay.
MAX_DELAY_SECONDS = 900


def sqs_client(*, timeout: float, attempts: int = 2):
    """A boto3 SQS client whose calls give up within a few seconds: the confirm waits for its send."""
    import boto3
    from botocore.config import Config

    return boto3.client("sqs", config=Config(connect_timeout=timeout, read_timeout=timeout,
                                             retries={"max_attempts": attempts, "mode": "standard"}))


class JobMessage(NamedTuple):
    """What a message asks: the job's next step, or (`notify`) the next try at the email its end owes."""

    upload_id: str
    attempt: int
    notify: bool = False


class JobQueue:
    """Messages that ask a worker to take a job's next step: `{"uploadId", "attempt"}`, or to try its email:
    `{"uploadId", "attempt", "notify": true}`, and nothing else (no token, no email, no URL). Delivery is at least
    once; the worker's conditional statements make a duplicate change nothing."""

    def __init__(self, client, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, upload_id: str, attempt: int, *, delay_seconds: int = 0, notify: bool = False) -> None:
        """Ask for the job's next step (or, with `notify`, a try at its email) now, or after `delay_seconds` (how
        the worker polls and retries without waiting)."""
        body = {"uploadId": upload_id, "attempt": attempt, **({"notify": True} if notify else {})}
        try:
            self._client.send_message(QueueUrl=self._queue_url, MessageBody=json.dumps(body),
                                      DelaySeconds=max(0, min(int(delay_seconds), MAX_DELAY_SECONDS)))
        except (ClientError, BotoCoreError) as exc:
            response = getattr(exc, "response", None) or {}
            log.error("queue send failed: %s", type(exc).__name__,
                      extra={"sqsErrorCode": response.get("Error", {}).get("Code")})
            raise ProcessingUnavailable() from exc

    def ping(self) -> None:
        """One request to prove the queue answers."""
        try:
            self._client.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])
        except (ClientError, BotoCoreError) as exc:
            raise ProcessingUnavailable() from exc


def parse_message(body: str) -> JobMessage | None:
    """What a message this service sent asks, or None for anything else (logged, then dropped: a message no
    worker can act on must not go round until the dead-letter queue)."""
    try:
        message = json.loads(body)
        upload_id, attempt = message["uploadId"], message["attempt"]
        notify = message.get("notify", False)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(upload_id, str) or not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        return None
    if notify is not True and notify is not False:
        return None
    return JobMessage(upload_id, attempt, notify)
