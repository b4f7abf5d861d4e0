"""An SMTP server (the local stack's own, or any relay) behind the Mailer port."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid

from ..errors import EmailRejected, EmailUnavailable
from . import EmailMessage

log = logging.getLogger(__name__)


class SmtpMailer:
    """One connection per message: a Lambda container may sleep for hours between two."""

    def __init__(self, *, host: str, port: int, sender: str, timeout: float):
        self._host = host
        self._port = port
        self._sender = sender
        self._timeout = timeout

    def mime(self, message: EmailMessage) -> MimeMessage:
        """The message as it goes on the wire: multipart/alternative, text first, HTML preferred."""
        mime = MimeMessage()
        mime["From"] = self._sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(localtime=False)
        mime["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2].strip(">") or None)
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
        return mime

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as server:
                server.send_message(self.mime(message))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            log.warning("email refused by the mail server", extra={"smtpCodes": codes})
            if all(code >= 500 for code in codes):
                raise EmailRejected() from exc
            raise EmailUnavailable() from exc
        except smtplib.SMTPResponseException as exc:
            log.warning("email send failed: %s", exc.smtp_code, extra={"smtpCode": exc.smtp_code})
            raise (EmailRejected if exc.smtp_code >= 500 else EmailUnavailable)() from exc
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("email send failed: %s", type(exc).__name__)
            raise EmailUnavailable() from exc
