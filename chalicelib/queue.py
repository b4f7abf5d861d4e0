"""The hand-off to processing: an Amazon SQS standard queue behind the domain's verbs."""

from __future__ import annotations

import json
import logging

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


class JobQueue:
    """Messages that ask a worker to take a job's next step: `{"uploadId", "attempt"}` and nothing else (no
    token, no email, no URL). Delivery is at least once; the worker's conditional statements make a duplicate
    change nothing."""

    def __init__(self, client, queue_url: str):
        self._client = client
        self._queue_url = queue_url

    def send(self, upload_id: str, attempt: int, *, delay_seconds: int = 0) -> None:
        """Ask for the job's next step now, or after `delay_seconds` (how the worker polls without waiting)."""
        try:
            self._client.send_message(QueueUrl=self._queue_url,
                                      MessageBody=json.dumps({"uploadId": upload_id, "attempt": attempt}),
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


def parse_message(body: str) -> tuple[str, int] | None:
    """(upload id, attempt) of a message this service sent, or None for anything else (logged, then dropped:
    a message no worker can act on must not go round until the dead-letter queue)."""
    try:
        message = json.loads(body)
        upload_id, attempt = message["uploadId"], message["attempt"]
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(upload_id, str) or not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        return None
    return upload_id, attempt
