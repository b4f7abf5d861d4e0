"""Amazon SES (API v2) behind the Mailer port."""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import EmailRejected, EmailUnavailable
from . import EmailMessage

log = logging.getLogger(__name__)
# SES's answers that no later try changes: the address or the message itself is refused. Everything else
# (throttling, a sending pause, a 5xx, a timeout) may pass later.
_REJECTED_CODES = {"MessageRejected", "BadRequestException", "MailFromDomainNotVerifiedException",
                   "NotFoundException"}


def sesv2_client(*, timeout: float, attempts: int = 2):
    """A boto3 SESv2 client whose calls give up within a few seconds."""
    import boto3
    from botocore.config import Config

    return boto3.client("sesv2", config=Config(connect_timeout=timeout, read_timeout=timeout,
                                               retries={"max_attempts": attempts, "mode": "standard"}))


class SesMailer:
    """`SendEmail` with Simple content, from one sender, through one configuration set (whose event destination
    records bounces and complaints: a bounce arrives after the send and never reaches the job)."""

    def __init__(self, client, *, sender: str, configuration_set: str):
        self._client = client
        self._sender = sender
        self._configuration_set = configuration_set

    def send(self, message: EmailMessage) -> None:
        try:
            self._client.send_email(
                FromEmailAddress=self._sender,
                Destination={"ToAddresses": [message.to]},
                Content={"Simple": {
                    "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": message.text, "Charset": "UTF-8"},
                             "Html": {"Data": message.html, "Charset": "UTF-8"}},
                }},
                ConfigurationSetName=self._configuration_set,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            log.warning("email send failed: %s", code, extra={"sesErrorCode": code})
            raise (EmailRejected if code in _REJECTED_CODES else EmailUnavailable)() from exc
        except BotoCoreError as exc:
            log.warning("email send failed: %s", type(exc).__name__)
            raise EmailUnavailable() from exc
