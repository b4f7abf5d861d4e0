"""The port to whatever delivers email: one `Mailer` with `send(message)`, an adapter per service (ses.py,
smtp.py), chosen by the settings (see deps.Dependencies.mailer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EmailMessage:
    """One email to one person: plain text and HTML bodies of the same words."""

    to: str
    subject: str
    text: str
    html: str


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message to the mail service. Raises EmailUnavailable when it may be tried again later,
        EmailRejected when it never will be accepted."""
