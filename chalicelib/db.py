"""PostgreSQL connections: opened lazily, pooled, never shared by two threads, replaced when stale.

A statement is sent at most once unless it provably never reached the server: a pooled connection the server
closed while it sat idle, a failed send, or the server's `57P01` before any answer. A statement that was sent and
then timed out or lost its connection may have run (or still be running); it is answered with
`DatabaseOutcomeUnknown` and never resent, and a server-side `statement_timeout` below the client's socket timeout
cancels it on the server too.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import select
import struct
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Callable, Optional

import pg8000.native
from pg8000.core import (
    AUTHENTICATION_REQUEST,
    BACKEND_KEY_DATA,
    ERROR_RESPONSE,
    NOTICE_RESPONSE,
    NULL_BYTE,
    PARAMETER_STATUS,
    PASSWORD,
    READY_FOR_QUERY,
    Context,
    _flush,
    _read,
    ci_unpack,
    i_unpack,
)
from pg8000.exceptions import DatabaseError, InterfaceError

from .config import DatabaseSettings
from .errors import DatabaseOutcomeUnknown, DatabaseUnavailable

log = logging.getLogger(__name__)

# Server errors after which the connection is gone: admin shutdown, crash shutdown, cannot connect now.
_CONNECTION_LOST_CODES = ("57P01", "57P02", "57P03")
# The statement was cancelled (statement_timeout), chosen as a deadlock victim or failed to serialise: it rolled
# back, and trying again later may succeed.
_ROLLED_BACK_UNAVAILABLE = ("57014", "40P01", "40001")
# The one of those that PostgreSQL sends, at a point where it checks for interrupts, instead of running or
# finishing a statement: as the first answer to a statement it proves that nothing of it was committed.
_ADMIN_SHUTDOWN = "57P01"


# --- Rendering values into statements -------------------------------------------------------------------------

class UnsafePlaceholder(ValueError):
    """A statement puts a placeholder where a value would not be a value (inside quotes, a comment, a body)."""


_IDENT_START = re.compile(r"[A-Za-z_]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# PostgreSQL's lexer takes every byte from 0x80 up as a letter of a name or a dollar-quote tag: in UTF-8, every
# character beyond ASCII.
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\u0080-\U0010FFFF][A-Za-z0-9_\u0080-\U0010FFFF]*)?\$")
_PLACEHOLDER_INSIDE = re.compile(r"(?<![:\w]):[A-Za-z_]")


def _is_word(char: str) -> bool:
    return bool(char) and (char.isalnum() or char in "_$" or char >= "\u0080")


@functools.lru_cache(maxsize=256)  # statements are constants: lex each once per container
def _scan(sql: str) -> tuple:
    """Split a statement into ("sql", text), ("quoted", text) and ("param", name) pieces, following PostgreSQL's
    lexer for strings ('', E'' with backslashes), quoted identifiers, -- and nested /* */ comments and
    $tag$ bodies. A `:name` inside any quoted or commented piece is refused."""
    pieces = []
    i, start, n = 0, 0, len(sql)

    def quoted(end: int, what: str):
        nonlocal i, start
        text = sql[i:end]
        match = _PLACEHOLDER_INSIDE.search(text)
        if match:
            raise UnsafePlaceholder(
                f"placeholder {text[match.start():].split()[0]!r} inside {what}: values go only where an expression"
                " may stand")
        if i > start:
            pieces.append(("sql", sql[start:i]))
        pieces.append(("quoted", text))
        i = start = end

    while i < n:
        c = sql[i]
        prev = sql[i - 1] if i else ""
        if c == "'":
            escapes = prev in ("E", "e") and (i < 2 or not _is_word(sql[i - 2]))
            j = i + 1
            while j < n:
                if escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise UnsafePlaceholder("unterminated string literal")
            quoted(j + 1, "a string literal")
        elif c == '"':
            j = i + 1
            while j < n and not (sql[j] == '"' and not (j + 1 < n and sql[j + 1] == '"')):
                j += 2 if sql[j] == '"' else 1
            if j >= n:
                raise UnsafePlaceholder("unterminated quoted identifier")
            quoted(j + 1, "a quoted identifier")
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            quoted(n if j < 0 else j + 1, "a comment")
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise UnsafePlaceholder("unterminated comment")
            quoted(j, "a comment")
        elif c == "$" and not _is_word(prev) and _DOLLAR_TAG.match(sql, i):
            tag = _DOLLAR_TAG.match(sql, i).group(0)
            j = sql.find(tag, i + len(tag))
            if j < 0:
                raise UnsafePlaceholder(f"unterminated dollar-quoted body {tag}")
            quoted(j + len(tag), f"a dollar-quoted body ({tag})")
        elif c == ":" and sql.startswith("::", i):
            i += 2
        elif c == ":" and not _is_word(prev) and _IDENT_START.match(sql, i + 1):
            name = _NAME.match(sql, i + 1).group(0)
            if i > start:
                pieces.append(("sql", sql[start:i]))
            pieces.append(("param", name))
            i = start = i + 1 + len(name)
        else:
            i += 1
    if start < n:
        pieces.append(("sql", sql[start:]))
    return tuple(pieces)


def sql_literal(value) -> str:
    """One value as a self-contained SQL expression: parenthesised, so no neighbouring token can merge with it
    (`5-:n` with n = -1 is `5-(-1)`, not `5--1`, a comment; a string next to another string never concatenates)."""
    if value is None:
        return "(NULL)"
    if isinstance(value, bool):
        return "(TRUE)" if value else "(FALSE)"
    if isinstance(value, int):
        return f"({int(value)})"
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"('{value!r}'::float8)"
        return f"({value!r}::float8)"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return f"('{value}'::numeric)"
        return f"({value}::numeric)"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("PostgreSQL text cannot hold the NUL character")
        value.encode("utf-8")  # a lone surrogate fails here, before anything is sent
        # An escape string reads a backslash the same way whatever standard_conforming_strings says (a plain one
        # does not, and the setting can change after connect), so backslashes are doubled and quotes doubled.
        return "(E'" + value.replace("\\", "\\\\").replace("'", "''") + "')"
    if isinstance(value, datetime):
        kind = "timestamp" if value.utcoffset() is None else "timestamptz"  # a tzinfo may give no offset
        return f"({pg8000.native.literal(value)}::{kind})"
    if isinstance(value, date):
        return f"({pg8000.native.literal(value)}::date)"
    if isinstance(value, (bytes, bytearray)):
        return f"(E'\\\\x{bytes(value).hex()}'::bytea)"
    raise TypeError(f"no SQL literal for a value of type {type(value).__name__}")


def render(sql: str, params: dict) -> str:
    """Fill `:name` placeholders with escaped, parenthesised literals.

    Statements then travel in one simple-protocol round trip, which also stays correct behind a
    transaction-mode pooler (pg8000's extended protocol spans several Syncs and takes three round trips).
    Values are escaped to mean the same under either standard_conforming_strings; the statements' own text is lexed
    with it on, which `Database` checks on every connection.
    """
    out = []
    for kind, text in _scan(sql):
        if kind == "param":
            if text not in params:
                raise KeyError(f"the statement needs a value for :{text}")
            out.append(sql_literal(params[text]))
        else:
            out.append(text)
    return "".join(out)


# --- TLS and authentication ----------------------------------------------------------------------------------

def ssl_context_for(settings: DatabaseSettings):
    """Map libpq's sslmode onto what pg8000 takes: False (plain), None (try TLS), True or a context (TLS only)."""
    return _ssl_context(settings.sslmode, settings.sslrootcert)


@functools.lru_cache(maxsize=8)  # one per TLS setting: loading the authorities costs milliseconds on each connect
def _ssl_context(mode: str, sslrootcert: Optional[str]):
    if mode == "disable":
        return False
    if mode in ("allow", "prefer"):
        return None
    if mode == "require" and not sslrootcert:
        return True
    import ssl  # only for verified TLS; plain and unverified connections never load it here

    cafile = None if sslrootcert in (None, "system") else sslrootcert
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = mode == "verify-full"
    return context


class ChannelBindingRefused(InterfaceError):
    """channel_binding=require, and the server asked for anything but SCRAM-SHA-256-PLUS."""


_AUTH_OK, _AUTH_CLEARTEXT, _AUTH_MD5, _AUTH_SASL, _AUTH_SASL_CONTINUE, _AUTH_SASL_FINAL = 0, 3, 5, 10, 11, 12
_PLUS = "SCRAM-SHA-256-PLUS"
NEGOTIATE_PROTOCOL_VERSION = b"v"  # pg8000 has no handler for it

# Start-up in three phases. Until AuthenticationOk the server may only ask for authentication, refuse, or say which
# protocol it speaks (libpq: "expected authentication request from server"): a ReadyForQuery there would let a
# server that never checked the password take statements. After it, until ReadyForQuery, only the report of the
# session's settings may come.
AUTHENTICATING, AUTHENTICATED, ESTABLISHED = "authenticating", "authenticated", "established"
STARTUP_MESSAGES = {
    AUTHENTICATING: frozenset((AUTHENTICATION_REQUEST, ERROR_RESPONSE, NEGOTIATE_PROTOCOL_VERSION)),
    AUTHENTICATED: frozenset((PARAMETER_STATUS, BACKEND_KEY_DATA, NOTICE_RESPONSE, ERROR_RESPONSE, READY_FOR_QUERY)),
}


def startup_refusal(phase: str, code: bytes) -> Optional[str]:
    """Why a server message of type `code` may not arrive in this phase of start-up; None when it may."""
    if phase == ESTABLISHED or code in STARTUP_MESSAGES[phase]:
        return None
    shown = code.decode("latin-1")
    if phase == AUTHENTICATING:
        return f"expected an authentication request from the server, but received {shown!r}"
    return f"unexpected message {shown!r} from the server after authentication, before it was ready"


class _StartupMessages:
    """pg8000's message handlers as its start-up loop looks them up: each type is first checked against the phase."""

    def __init__(self, conn: "Connection"):
        self._conn = conn

    def __getitem__(self, code: bytes):
        refusal = startup_refusal(self._conn._phase, code)
        if refusal:
            raise InterfaceError(refusal)
        if code == NEGOTIATE_PROTOCOL_VERSION:
            return self._conn.handle_NEGOTIATE_PROTOCOL_VERSION
        return self._conn._handlers[code]


class Connection(pg8000.native.Connection):
    """pg8000's connection with libpq's start-up rules and channel_binding, and a statement runner that knows
    whether it sent."""

    _phase = ESTABLISHED  # what a connection made without __init__ (a unit test's) is

    def __init__(self, *args, channel_binding: str = "prefer", **kwargs):
        self._channel_binding = channel_binding
        self._scram_started = False  # a SCRAM exchange was started
        self._bound = False  # ... with SCRAM-SHA-256-PLUS, bound to this TLS channel
        self._server_proved = False  # ... and the server's final message carried a signature that checked out
        self._phase = AUTHENTICATING
        try:
            super().__init__(*args, **kwargs)
        except (ValueError, IndexError, struct.error) as exc:
            # A message too short for its type or with a length below its own header's (pg8000 would read a
            # negative count): a server that speaks garbage is as good as none.
            self._close_quietly()
            raise InterfaceError(f"malformed message from the server during start-up: {exc}") from exc
        if self._phase != AUTHENTICATED:
            # pg8000's start-up loop ended without AuthenticationOk: never use such a connection.
            self._close_quietly()
            raise InterfaceError("the server never completed authentication")
        self._phase = ESTABLISHED

    def _close_quietly(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no mutate (closing is a courtesy; the connection is refused regardless)
            pass

    @property
    def message_types(self):
        return self._handlers if self._phase == ESTABLISHED else _StartupMessages(self)

    @message_types.setter
    def message_types(self, handlers):
        # pg8000 assigns its handler table in __init__, just before its start-up loop reads it.
        self._handlers = handlers

    def handle_NEGOTIATE_PROTOCOL_VERSION(self, data, context):
        # The client asked for 3.0 without options, which every server since 7.4 speaks: a server answering this
        # cannot serve it (libpq ends the connection too).
        newest, unknown = i_unpack(data)[0], data[8:].split(NULL_BYTE)[:-1]
        raise InterfaceError(f"the server does not speak protocol 3.0 as asked: it offers 3.{newest}"
                             + (f" and does not know {b', '.join(unknown).decode('latin-1')}" if unknown else ""))

    def handle_AUTHENTICATION_REQUEST(self, data, context):
        code = i_unpack(data)[0]
        if code == _AUTH_SASL:
            return self._start_scram([m.decode("ascii") for m in data[4:-2].split(NULL_BYTE)])
        if self._channel_binding == "require":
            if code in (_AUTH_CLEARTEXT, _AUTH_MD5) or (code == _AUTH_OK and not self._server_proved):
                # Refused before a password or a proof is written, and "OK" is believed only from a server that
                # proved, bound to this TLS channel, that it knows the password: whoever skips that may be in the
                # middle.
                raise ChannelBindingRefused(
                    f"channel_binding=require, but the server answered with authentication {code}"
                    " instead of completing SCRAM-SHA-256-PLUS")
            if code in (_AUTH_SASL_CONTINUE, _AUTH_SASL_FINAL) and not self._bound:
                raise ChannelBindingRefused(f"channel_binding=require, but SCRAM step {code} came unasked")
            if code not in (_AUTH_OK, _AUTH_SASL_CONTINUE, _AUTH_SASL_FINAL):
                raise ChannelBindingRefused(f"channel_binding=require refuses authentication {code}")
        if code in (_AUTH_SASL_CONTINUE, _AUTH_SASL_FINAL) and not self._scram_started:
            raise InterfaceError(f"the server sent SCRAM step {code} without asking for SCRAM")
        if code == _AUTH_OK and self._scram_started and not self._server_proved:
            # A server that started SCRAM finishes it with its own signed proof before "OK" (libpq 16's
            # require_auth=scram-sha-256 insists as well); "OK" without it comes from someone who cannot make one.
            raise InterfaceError("the server answered OK without completing SCRAM")
        try:
            result = super().handle_AUTHENTICATION_REQUEST(data, context)
        except Exception as exc:
            if type(exc).__name__ == "ScramException":  # a forged or garbled server signature
                raise InterfaceError(f"the server's SCRAM proof failed: {exc}") from exc
            raise
        if code == _AUTH_SASL_FINAL:
            # pg8000 checked the server's signature in set_server_final(); it raises when it does not match.
            self._server_proved = True
        elif code == _AUTH_OK:
            self._phase = AUTHENTICATED
        return result

    def _start_scram(self, mechanisms: list) -> None:
        import ssl

        import scramp

        tls = isinstance(self._usock, ssl.SSLSocket)
        if self._channel_binding == "require":
            if not tls or _PLUS not in mechanisms:
                raise ChannelBindingRefused("channel_binding=require, but the server does not offer "
                                            "SCRAM-SHA-256-PLUS over TLS")
            mechanisms, binding = [_PLUS], ("tls-server-end-point", self._usock)
            self._bound = True
        elif self._channel_binding == "disable" or not tls:
            mechanisms, binding = [m for m in mechanisms if not m.endswith("-PLUS")], None
        else:
            binding = ("tls-server-end-point", self._usock)
        if self.password is None:
            raise InterfaceError("server requesting SCRAM authentication, but no password was provided")
        self.auth = scramp.ScramClient(mechanisms, self.user.decode("utf8"), self.password.decode("utf8"),
                                       channel_binding=binding)
        self._scram_started = True
        first = self.auth.get_client_first().encode("utf8")
        mechanism = self.auth.mechanism_name.encode("ascii") + NULL_BYTE
        self._send_message(PASSWORD, mechanism + len(first).to_bytes(4, "big") + first)
        _flush(self._sock)

    def run_once(self, sql: str) -> list:
        """Send one simple query and read its answer.

        Raises NotSent when the statement provably never ran: the server had already closed this idle
        connection (or said something unasked, which on an idle connection is its goodbye), the send itself
        failed, or the first answer is an admin shutdown. A read that times out or finds the connection gone
        after the statement went out raises InterfaceError: the statement may have run.
        """
        if self._peer_spoke():
            raise NotSent("the server closed this idle connection")
        payload = sql.encode(self._client_encoding)  # an unencodable statement fails before anything is sent
        context = Context(sql)
        try:
            self._send_message(b"Q", payload + NULL_BYTE)
            _flush(self._sock)
        except InterfaceError as exc:
            raise NotSent("sending failed") from exc
        first, code = True, None
        while code != READY_FOR_QUERY:
            code, length = ci_unpack(_read(self._sock, 5))
            if length < 4:
                raise InterfaceError(f"malformed message from the server: length {length}")
            self.message_types[code](_read(self._sock, length - 4), context)
            if code == ERROR_RESPONSE and _severity(context.error) in ("FATAL", "PANIC"):
                # The server ends the connection after this; no ReadyForQuery will come.
                if first and context.error.args[0].get("C") == _ADMIN_SHUTDOWN:
                    raise NotSent("the server shut the connection down before running the statement") \
                        from context.error
                raise context.error
            first = False
        self._context = context
        if context.error is not None:
            raise context.error
        return context.rows

    def _peer_spoke(self) -> bool:
        """True when the server sent anything (its FATAL goodbye, or end of file) while nothing was asked."""
        usock = self._usock
        if getattr(usock, "pending", None) and usock.pending():
            return True
        poller = select.poll()
        poller.register(usock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))


class NotSent(Exception):
    """The statement provably never ran on the server: safe to send again on another connection."""


def _detail(exc: DatabaseError) -> dict:
    return exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}


def _severity(exc: DatabaseError) -> str:
    detail = _detail(exc)
    return detail.get("V") or detail.get("S") or ""


def _connection_gone(exc: DatabaseError) -> bool:
    code = _detail(exc).get("C", "")
    return _severity(exc) in ("FATAL", "PANIC") or code in _CONNECTION_LOST_CODES or code.startswith("08")


# --- The pool -------------------------------------------------------------------------------------------------

class Database:
    """A small pool of pg8000 connections that runs one statement at a time."""

    def __init__(
        self,
        settings: DatabaseSettings,
        *,
        timeout: float = 5.0,
        statement_timeout: Optional[float] = -1,
        max_idle: int = 4,
        max_open: int = 10,
        application_name: str = "3d-ultra-upload",
        connect: Optional[Callable[..., Connection]] = None,
    ):
        """`statement_timeout` (seconds) is the server's limit per statement; by default 80% of `timeout`, the
        client's socket timeout, so the server cancels a statement before the client gives up on it. None turns
        it off (for administrative statements that cannot run in a transaction block, such as CREATE DATABASE)."""
        self._settings = settings
        self._timeout = timeout
        if statement_timeout == -1:
            statement_timeout = timeout * 0.8
        # SET LOCAL in the same simple-query message: one round trip, and it ends with the statement's implicit
        # transaction, so a transaction-mode pooler never hands the setting to another client.
        self._prefix = (f"SET LOCAL statement_timeout = {max(1, int(statement_timeout * 1000))}; "
                        if statement_timeout else "")
        self._max_idle = max_idle
        self._application_name = application_name
        self._connect = connect or Connection
        self._idle: list = []
        self._lock = threading.Lock()
        # At most this many statements at once: a burst of `chalice local` threads queues here instead of
        # exhausting the server's connection slots.
        self._slots = threading.BoundedSemaphore(max_open)

    def run(self, statement: str, /, **params) -> list:
        """Run one statement and return its rows; a pooled connection the server closed is replaced silently."""
        text = self._prefix + render(statement, params)
        for attempt in (1, 2):
            conn, reused = self._acquire()
            try:
                rows = conn.run_once(text)
            except NotSent as exc:
                self._drop(conn)
                if reused and attempt == 1:
                    # Idle connections die together (a server restart, Neon suspending): drop them all and retry
                    # once on a fresh one, rather than walking through the pool's dead sockets one by one.
                    log.info("database connection was closed by the server (%s); reconnecting", exc)
                    self.close()
                    continue
                log.error("database unavailable: %s", exc)
                raise DatabaseUnavailable() from exc
            except DatabaseError as exc:
                code = _detail(exc).get("C", "")
                if _connection_gone(exc):
                    # The statement went out and the connection ended before its answer: it may have run.
                    self._drop(conn)
                    log.error("database connection lost during a statement: %s", code)
                    raise DatabaseOutcomeUnknown() from exc
                self._release(conn)
                if code in _ROLLED_BACK_UNAVAILABLE or code.startswith("53"):
                    # Cancelled by statement_timeout, a deadlock or a serialization failure, or the server is out of
                    # resources: the statement rolled back and a later try may succeed, so the caller sees a 503.
                    log.error("database statement rolled back: %s", code)
                    raise DatabaseUnavailable() from exc
                raise
            except (InterfaceError, OSError) as exc:
                # Sent, then no complete answer (a read timeout or a lost connection): it may have run. Never resent.
                self._drop(conn)
                log.error("database statement outcome unknown: %s", exc)
                raise DatabaseOutcomeUnknown() from exc
            except BaseException:
                # Anything else (a driver bug, an encoding error): this connection's state is unknown.
                self._drop(conn)
                raise
            self._release(conn)
            return rows
        raise AssertionError("unreachable")  # pragma: no mutate (the loop always returns or raises)

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
        try:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
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
                channel_binding=s.channel_binding,
            )
        except (InterfaceError, OSError, DatabaseError) as exc:
            log.error("cannot connect to the database: %s: %s", type(exc).__name__, exc)
            raise DatabaseUnavailable() from exc
        # The statements' text is lexed for standard strings; refuse a server that reads backslashes in them as
        # escapes, or that does not say (every PostgreSQL and PgBouncer reports the setting at start-up).
        if conn.parameter_statuses.get("standard_conforming_strings", "off") != "on":
            self._discard(conn)
            log.error("the database must run with standard_conforming_strings=on; refusing the connection")
            raise DatabaseUnavailable()
        return conn

    def _release(self, conn) -> None:
        try:
            with self._lock:
                keep = len(self._idle) < self._max_idle
                if keep:
                    self._idle.append(conn)
            if not keep:
                self._discard(conn)
        finally:
            self._slots.release()

    def _drop(self, conn) -> None:
        try:
            self._discard(conn)
        finally:
            self._slots.release()

    @staticmethod
    def _discard(conn) -> None:
        try:
            conn.close()
        except Exception:  # closing a dead socket may fail in any way; the connection is gone regardless
            pass
