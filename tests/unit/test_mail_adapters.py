"""The mail adapters: SES (API v2) against moto in-process, and the SMTP message as it goes on the wire."""

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError
import pytest
from moto import mock_aws
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID

from chalicelib.errors import EmailRejected, EmailUnavailable
from chalicelib.mail import EmailMessage
from chalicelib.mail.ses import SesMailer
from chalicelib.mail.smtp import SmtpMailer

SENDER = "3D Ultra <no-reply@3d-ultra.example>"
REGION = "eu-central-1"
MESSAGE = EmailMessage(to="maya@example.com", subject="Your 3D model is ready", text="Open it: https://x/#view=t\n",
                       html="<p><a href=\"https://x/#view=t\">Open it</a></p>")


@pytest.fixture
def ses(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SESV2", raising=False)
    with mock_aws():
        client = boto3.client("sesv2", region_name=REGION)
        calls = []
        client.meta.events.register("provide-client-params.sesv2.SendEmail",
                                    lambda params, **_: calls.append(params))
        yield client, calls


def test_the_ses_adapter_sends_simple_content_from_the_sender_through_the_configuration_set(ses):
    client, calls = ses
    client.create_email_identity(EmailIdentity="no-reply@3d-ultra.example")
    client.create_configuration_set(ConfigurationSetName="three-d-ultra")

    SesMailer(client, sender=SENDER, configuration_set="three-d-ultra").send(MESSAGE)

    assert calls == [{
        "FromEmailAddress": SENDER,
        "Destination": {"ToAddresses": ["maya@example.com"]},
        "Content": {"Simple": {
            "Subject": {"Data": "Your 3D model is ready", "Charset": "UTF-8"},
            "Body": {"Text": {"Data": "Open it: https://x/#view=t\n", "Charset": "UTF-8"},
                     "Html": {"Data": "<p><a href=\"https://x/#view=t\">Open it</a></p>", "Charset": "UTF-8"}},
        }},
        "ConfigurationSetName": "three-d-ultra",
    }]
    (sent,) = get_backend("ses")[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert (sent.source, sent.destinations, sent.subject) == (SENDER, {"ToAddresses": ["maya@example.com"]},
                                                              "Your 3D model is ready")


def test_ses_refusing_an_unverified_sender_is_a_rejection_never_retried(ses):
    client, _ = ses

    with pytest.raises(EmailRejected):
        SesMailer(client, sender=SENDER, configuration_set="three-d-ultra").send(MESSAGE)


class FailingSes:
    def __init__(self, error):
        self.error = error

    def send_email(self, **_):
        raise self.error


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="https://email.eu-central-1.amazonaws.com"),
    ClientError({"Error": {"Code": "TooManyRequestsException"}}, "SendEmail"),
    ClientError({"Error": {"Code": "SendingPausedException"}}, "SendEmail"),
])
def test_ses_unreachable_throttling_or_paused_is_unavailable_and_tried_again_later(error):
    with pytest.raises(EmailUnavailable):
        SesMailer(FailingSes(error), sender=SENDER, configuration_set="c").send(MESSAGE)


def test_the_smtp_message_is_multipart_alternative_text_then_html_from_the_sender():
    mime = SmtpMailer(host="127.0.0.1", port=25, sender=SENDER, timeout=1).mime(MESSAGE)

    assert (mime["From"], mime["To"], mime["Subject"]) == (SENDER, "maya@example.com", "Your 3D model is ready")
    assert mime.get_content_type() == "multipart/alternative"
    parts = [(p.get_content_type(), p.get_content()) for p in mime.iter_parts()]
    assert parts == [("text/plain", MESSAGE.text), ("text/html", MESSAGE.html + "\n")]
    assert mime["Message-ID"].endswith("@3d-ultra.example>")
