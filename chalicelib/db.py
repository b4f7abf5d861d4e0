"""PostgreSQL connections: opened lazily, pooled, never shared by two threads, replaced when stale."""

from __future__ import annotations

import logging
import re
import threading
from typing import Callable, Optional

import pg8000.native
from pg8000.exceptions import DatabaseError, InterfaceError

from .config import DatabaseSettings
from .errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# Server errors that mean "this connection is gone", not "this statement failed":
# admin shutdown, crash shutdown, cannot connect now, and the connection exception class.
_CONNECTION_LOST_CODES = ("57P01", "57P02", "57P03")
_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def render(sql: str, params: dict) -> str:
    """Fill `:name` placeholders with literals escaped by pg8000.

    Statements then travel in one simple-protocol round trip, which also stays correct behind a
    transaction-mode pooler (pg8000's extended protocol spans several Syncs and takes three round trips).
    """

    def value(match: re.Match) -> str:
        return pg8000.native.literal(params[match.group(1)])

    return _PLACEHOLDER.sub(value, sql)


def ssl_context_for(settings: DatabaseSettings):
    """Map libpq's sslmode onto what pg8000 takes: False (plain), None (try TLS), True or a context (TLS only)."""
    mode = settings.sslmode
    if mode == "disable":
        return False
    if mode in ("allow", "prefer"):
        return None
    if mode == "require" and not settings.sslrootcert:
        return True
    import ssl  # only for verified TLS; plain and unverified connections never load it here

    cafile = None if settings.sslrootcert in (None, "system") else settings.sslrootcert
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = mode == "verify-full"
    return context


def _lost_connection(exc: Exception) -> bool:
    if isinstance(exc, (InterfaceError, OSError)):
        return True
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    code = detail.get("C", "")
    return code in _CONNECTION_LOST_CODES or code.startswith("08")


class Database:
    """A small pool of pg8000 connections that runs one statement at a time."""

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        timeout: float = 5.0,
        max_idle: int = 4,
        max_open: int = 10,
        application_name: str = "3d-ultra-upload",
        connect: Optional[Callable[..., pg8000.native.Connection]] = None,
    ):
        self._settings = settings
        self._timeout = timeout
        self._max_idle = max_idle
        self._application_name = application_name
        self._connect = connect or pg8000.native.Connection
        self._idle: list = []
        self._lock = threading.Lock()
        # At most this many statements at once: a burst of `chalice local` threads queues here instead of
        # exhausting the server's connection slots.
        self._slots = threading.BoundedSemaphore(max_open)

    def run(self, statement: str, /, **params) -> list:
        """Run one statement and return its rows; a stale pooled connection is replaced once, silently."""
        text = render(statement, params) if params else statement
        for attempt in (1, 2):
            conn, reused = self._acquire()
            try:
                rows = conn.run(text)
            except (InterfaceError, OSError, DatabaseError) as exc:
                if not _lost_connection(exc):
                    self._release(conn)
                    raise
                self._discard(conn)
                self._slots.release()
                if reused and attempt == 1:
                    # Idle connections die together (a server restart, Neon suspending): drop them all and retry
                    # once on a fresh one, rather than walking through the pool's dead sockets one by one.
                    log.info("database connection was stale; reconnecting")
                    self.close()
                    continue
                log.error("database query failed: %s", type(exc).__name__)
                raise DatabaseUnavailable() from exc
            self._release(conn)
            return rows
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    def _acquire(self):
        if not self._slots.acquire(timeout=self._timeout):
            log.error("no database connection free within %.1f s", self._timeout)
            raise DatabaseUnavailable()
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        try:
            return self._open(), False
        except BaseException:
            self._slots.release()
            raise

    def _open(self):
        s = self._settings
        try:
            conn = self._connect(
                user=s.user,
                password=s.password,
                host=s.host,
                port=s.port,
                database=s.database,
                ssl_context=ssl_context_for(s),
                timeout=self._timeout,
                application_name=self._application_name,
            )
        except (InterfaceError, OSError, DatabaseError) as exc:
            log.error("cannot connect to the database: %s: %s", type(exc).__name__, exc)
            raise DatabaseUnavailable() from exc
        # Literals are escaped for standard strings; refuse a server that reads backslashes as escapes.
        if conn.parameter_statuses.get("standard_conforming_strings", "on") != "on":
            conn.close()
            raise DatabaseUnavailable("The database must run with standard_conforming_strings=on.")
        return conn

    def _release(self, conn) -> None:
        with self._lock:
            keep = len(self._idle) < self._max_idle
            if keep:
                self._idle.append(conn)
        if not keep:
            self._discard(conn)
        self._slots.release()

    @staticmethod
    def _discard(conn) -> None:
        try:
            conn.close()
        except Exception:  # closing a dead socket may fail in any way; the connection is gone regardless
            pass
