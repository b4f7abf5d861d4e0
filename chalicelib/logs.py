"""Structured logs: one JSON object per line, on stderr (CloudWatch keeps each line as one event).

Every line written while a request is handled carries that request's `requestId` and, once known, its
`uploadId`: the middleware binds them in a context variable (one per thread under `chalice local`, one per
invocation on Lambda) and a filter on the handler copies them onto each record.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_fields: contextvars.ContextVar[dict] = contextvars.ContextVar("log_fields", default={})
_process_fields: dict = {}


class JsonFormatter(logging.Formatter):
    """Level, logger and message, plus whatever was passed in `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ContextFilter(logging.Filter):
    """Adds the bound request fields (and the deployed version) to every record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for fields in (_process_fields, _fields.get()):
            for name, value in fields.items():
                if getattr(record, name, None) is None:
                    setattr(record, name, value)
        return True


def bind(**fields) -> contextvars.Token:
    """Add fields (None values are skipped) to every later line of this request; pass the token to `unbind`."""
    return _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})


def bound() -> dict:
    """The fields bound for this request (or invocation) so far."""
    return dict(_fields.get())


def unbind(token: contextvars.Token) -> None:
    """Forget what was bound since `token` (the end of a request)."""
    _fields.reset(token)


def configure_logging(level: int = logging.INFO, *, version: str | None = None) -> None:
    """Send the service's loggers to stderr as JSON lines (once, however often it is called)."""
    if version:
        _process_fields["version"] = version
    logger = logging.getLogger("chalicelib")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)  # pragma: no mutate (StreamHandler's default stream is stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    # Lambda's root logger has a handler of its own: do not print every line twice.
    logger.propagate = False
