"""What AWS runs around the worker functions, for a local stack: Lambda's SQS event source mapping (receive one
message, invoke the function with Lambda's event, delete the message when the invocation succeeded, leave it to
reappear after its visibility timeout when it failed) and EventBridge's one-minute schedule of the dispatcher.

`chalice local` runs no SQS or scheduled handlers, so `make dev` and the tests run this next to it, with the same
environment, calling the very handlers Lambda calls (`app.process_job`, `app.fail_undeliverable`,
`app.dispatch_jobs`):

    python -m devstack.worker [--dispatch-seconds 60]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import uuid
from types import SimpleNamespace

log = logging.getLogger("devstack.worker")


def lambda_event(message: dict, queue_arn: str) -> dict:
    """The event Lambda's SQS event source mapping sends for one message."""
    attributes = message.get("Attributes", {})
    return {"Records": [{
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": {"ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                       "SentTimestamp": attributes.get("SentTimestamp", "0")},
        "messageAttributes": {}, "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": os.environ.get("AWS_DEFAULT_REGION", "eu-central-1"),
    }]}


def context(function_name: str) -> SimpleNamespace:
    return SimpleNamespace(aws_request_id=str(uuid.uuid4()), function_name=function_name,
                           get_remaining_time_in_millis=lambda: 60_000)


class EventSourceMapping:
    """One queue feeding one handler, one message per invocation (batch size 1)."""

    def __init__(self, client, queue_url: str, handler, function_name: str):
        self._client, self._queue_url, self._handler, self._name = client, queue_url, handler, function_name
        self._arn = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]

    def poll_once(self, wait_seconds: int = 1) -> bool:
        """Receive at most one message and invoke the handler with it; True if there was one."""
        messages = self._client.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=1,
                                                WaitTimeSeconds=wait_seconds,
                                                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"]).get(
            "Messages", [])
        for message in messages:
            try:
                self._handler(lambda_event(message, self._arn), context(self._name))
            except Exception:
                # The handler has logged it (app.reported); Lambda leaves the message for its redelivery.
                continue
            self._client.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return bool(messages)


def run(stop: threading.Event, *, dispatch_seconds: float, workers: int = 2) -> None:
    """Feed the queues to their handlers and run the dispatcher on its schedule until `stop` is set."""
    import boto3

    import app

    client = boto3.client("sqs")
    jobs_url = os.environ["JOBS_QUEUE_URL"]
    dead_url = client.get_queue_url(QueueName=app.DEAD_JOBS_QUEUE)["QueueUrl"]
    mappings = [EventSourceMapping(client, jobs_url, app.process_job, "process-job") for _ in range(workers)]
    mappings.append(EventSourceMapping(client, dead_url, app.fail_undeliverable, "fail-undeliverable"))

    def feed(mapping):
        while not stop.is_set():
            try:
                mapping.poll_once()
            except Exception as exc:  # the queue server went away: try again shortly, as Lambda's poller does
                log.warning("queue receive failed: %s", type(exc).__name__)
                stop.wait(1)

    threads = [threading.Thread(target=feed, args=(mapping,), daemon=True) for mapping in mappings]
    for thread in threads:
        thread.start()
    while not stop.wait(dispatch_seconds):
        try:
            app.dispatch_jobs({}, context("dispatch-jobs"))
        except Exception:
            pass  # logged by the handler; the next run tries again
    for thread in threads:
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dispatch-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    from .processes import StopSignals

    stop = threading.Event()
    try:
        with StopSignals():
            print("worker ready: feeding the jobs queue to app.process_job", flush=True)
            run(stop, dispatch_seconds=args.dispatch_seconds)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
