"""The local stack's own mail server: SMTP on 127.0.0.1 (aiosmtpd), keeping every message it receives, and handing
each to a callback (`make dev` prints them in full). It delivers nothing anywhere.

    python -m devstack.mail --port 2525    # alone, printing what arrives (Ctrl-C to stop)
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import threading
from email.message import EmailMessage
from typing import Callable, Optional

from .processes import free_port


class MailServer:
    """SMTP on 127.0.0.1:`port`; `stop()` and `start()` again on the same port (a mail-server outage, then its
    return). `messages` holds every message received, parsed, in order."""

    def __init__(self, *, port: int | None = None, on_message: Optional[Callable[[EmailMessage], None]] = None):
        self.port = port or free_port()
        self.on_message = on_message
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> "MailServer":
        from aiosmtpd.controller import Controller

        # aiosmtpd logs every SMTP command at INFO: the message printed whole says all of it.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                message = email.message_from_bytes(envelope.original_content or envelope.content,
                                                   policy=email.policy.default)
                with server._lock:
                    server.messages.append(message)
                if server.on_message is not None:
                    server.on_message(message)
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self, to: str | None = None) -> list[EmailMessage]:
        """The messages received so far (to one address, if given)."""
        with self._lock:
            return [m for m in self.messages if to is None or m["To"] == to]

    def client_env(self) -> dict[str, str]:
        return {"SMTP_HOST": self.host, "SMTP_PORT": str(self.port)}


def describe(message: EmailMessage) -> str:
    """A message as a person reads it: every header, then each part decoded (text, then HTML)."""
    lines = ["----- email received by the local mail server " + "-" * 20]
    lines += [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.is_multipart():
            continue
        lines += ["", f"[{part.get_content_type()}]", part.get_content().replace("\r\n", "\n").rstrip()]
    lines.append("-" * 66)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2525)
    server = MailServer(port=parser.parse_args().port, on_message=lambda m: print(describe(m), flush=True)).start()
    print(f"mail server on smtp://{server.host}:{server.port} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
