"""Amazon SQS over real HTTP: moto's server mode (visibility timeouts, message delays, redrive to a dead-letter
queue), which boto3 reaches through AWS_ENDPOINT_URL_SQS. The same `moto_server` as devstack/ssm.py."""

from __future__ import annotations

import json

from .ssm import CREDENTIALS, REGION, MotoSsm

# As the template sets them (ops/package.py): a message goes to the dead-letter queue after five receives, and is
# invisible for six times the worker's timeout after each (locally the worker's timeout is short).
MAX_RECEIVES = 5


class MotoSqs(MotoSsm):
    """One `moto_server` on 127.0.0.1 serving SQS (and SSM)."""

    def client_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_SQS": self.endpoint_url, **super().client_env()}

    def client(self):
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def create_job_queues(self, name: str, *, visibility_timeout: int) -> dict[str, str]:
        """The jobs queue and its dead-letter queue `<name>-dead`; returns their URLs by name."""
        client = self.client()
        dead = client.create_queue(QueueName=name + "-dead")["QueueUrl"]
        dead_arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        jobs = client.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(MAX_RECEIVES)}),
        })["QueueUrl"]
        return {name: jobs, name + "-dead": dead}
