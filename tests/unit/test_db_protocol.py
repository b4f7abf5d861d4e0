"""chalicelib/db.py byte by byte, without a server: the statement runner over an in-memory stream of the server's
messages, channel binding's authentication choices, the idle-socket check, literals, and the pool's log lines."""

import io
import json
import select
import ssl
import struct
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pg8000.core
import pg8000.native
import pytest
from pg8000.exceptions import DatabaseError, InterfaceError

import chalicelib.db as db
from chalicelib.config import DatabaseSettings
from chalicelib.db import ChannelBindingRefused, Connection, Database, NotSent, sql_literal
from chalicelib.errors import DatabaseOutcomeUnknown, DatabaseUnavailable
from tests.unit.logcapture import records

SETTINGS = DatabaseSettings.from_url("postgresql://u@127.0.0.1/db?sslmode=disable")
PLUS, PLAIN = "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"


# Literals

@pytest.mark.parametrize("value, literal", [
    (True, "(TRUE)"), (False, "(FALSE)"), (-7, "(-7)"), (1.5, "(1.5::float8)"),
    (float("inf"), "('inf'::float8)"), (float("-inf"), "('-inf'::float8)"), (float("nan"), "('nan'::float8)"),
    (Decimal("1.50"), "(1.50::numeric)"), (Decimal("NaN"), "('NaN'::numeric)"),
    (Decimal("-Infinity"), "('-Infinity'::numeric)"),
    (datetime(2026, 3, 1, 12, 30, 5, 123456), "('2026-03-01T12:30:05.123456'::timestamp)"),
    (datetime(2026, 3, 1, 12, 30, 5, tzinfo=timezone(timedelta(hours=2))), "('2026-03-01T10:30:05+00:00'::timestamptz)"),
    (date(2026, 3, 1), "('2026-03-01'::date)"),
    (b"\x00\xffa", "(E'\\\\x00ff61'::bytea)"), (bytearray(b"ab"), "(E'\\\\x6162'::bytea)"),
    ("a'b", "(E'a''b')"), ("\\');SELECT current_user;--", "(E'\\\\'');SELECT current_user;--')"),
])
def test_each_kind_of_value_has_its_exact_self_contained_literal(value, literal):
    assert sql_literal(value) == literal


def test_text_with_a_nul_or_a_lone_surrogate_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="^PostgreSQL text cannot hold the NUL character$"):
        sql_literal("a\x00b")
    with pytest.raises(UnicodeEncodeError):
        sql_literal("a\udc80b")


@pytest.mark.parametrize("sql, rendered", [
    ("SELECT x:y", "SELECT x:y"),      # a colon after a word is not a placeholder
    ("SELECT _:y", "SELECT _:y"),
    ("SELECT $1:y", "SELECT $1:y"),
    ("SELECT (:y)", "SELECT ((1))"),
    ("SELECT a$$ :y", "SELECT a$$ (1)"),  # `$$` after a word is part of it, not a dollar quote
    ("SELECT 1$$ :y", "SELECT 1$$ (1)"),
    ("SELECT e'\\'' :y", "SELECT e'\\'' (1)"),  # E'' with a lower-case e: the backslash escapes the quote...
    ("SELECT xe'\\' || :y", "SELECT xe'\\' || (1)"),  # ...but not when the e ends a longer word
])
def test_what_counts_as_a_word_before_a_colon_or_a_dollar(sql, rendered):
    db._scan.cache_clear()  # lexed afresh, not remembered from another test

    assert db.render(sql, {"y": 1}) == rendered


# The pool

class Fake:
    """A connection that answers `run_once` from a script of outcomes (a value is returned, an exception raised)."""

    opened = []

    def __init__(self, **kwargs):
        self.kwargs, self.closed, self.script = kwargs, False, []
        self.parameter_statuses = {"standard_conforming_strings": "on"}
        Fake.opened.append(self)

    def run_once(self, sql):
        outcome = self.script.pop(0) if self.script else [[sql]]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self):
        self.closed = True


@pytest.fixture
def fake():
    Fake.opened = []
    return Fake


@pytest.mark.parametrize("timeout, statement_timeout, prefix", [
    (5.0, -1, "SET LOCAL statement_timeout = 4000; "),
    (5.0, 2.5, "SET LOCAL statement_timeout = 2500; "),
    (5.0, 0.0004, "SET LOCAL statement_timeout = 1; "),  # never 0, which would mean no limit
    (5.0, 0.0015, "SET LOCAL statement_timeout = 1; "),
    (5.0, 0.002, "SET LOCAL statement_timeout = 2; "),
    (5.0, None, ""),
    (5.0, 0, ""),
])
def test_the_server_side_timeout_travels_with_each_statement(fake, timeout, statement_timeout, prefix):
    database = Database(SETTINGS, connect=fake, timeout=timeout, statement_timeout=statement_timeout)

    assert database.run("SELECT 1") == [[prefix + "SELECT 1"]]


def test_by_default_ten_statements_run_at_once_and_four_connections_stay_idle(fake):
    database = Database(SETTINGS, connect=fake, timeout=0.01)
    held = [database._acquire()[0] for _ in range(10)]

    with pytest.raises(DatabaseUnavailable):
        database._acquire()
    for conn in held:
        database._release(conn)
    assert [conn.closed for conn in held] == [False] * 4 + [True] * 6


def test_a_fresh_connection_the_server_closed_is_503_not_a_second_connection(fake, service_logs):
    class Closed(Fake):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.script = [NotSent("sending failed")]

    with pytest.raises(DatabaseUnavailable) as raised:
        Database(SETTINGS, connect=Closed).run("SELECT 1")

    assert type(raised.value) is DatabaseUnavailable and len(fake.opened) == 1 and fake.opened[0].closed
    assert [(r.levelname, r.getMessage()) for r in records(service_logs, "chalicelib.db")] == [
        ("ERROR", "database unavailable: sending failed")]


def test_each_way_a_statement_fails_is_one_log_line_naming_it(fake, service_logs):
    database = Database(SETTINGS, connect=fake)
    database.run("SELECT 1")
    fake.opened[0].script = [NotSent("the server closed this idle connection")]
    database.run("SELECT 2")  # replaced silently, but said in the log
    fake.opened[1].script = [DatabaseError({"S": "FATAL", "C": "57P02", "M": "crash"})]
    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 3")
    database.run("SELECT 4")
    fake.opened[2].script = [InterfaceError("network error")]
    with pytest.raises(DatabaseOutcomeUnknown):
        database.run("SELECT 5")

    assert [(r.levelname, r.getMessage()) for r in records(service_logs, "chalicelib.db")] == [
        ("INFO", "database connection was closed by the server (the server closed this idle connection); "
                 "reconnecting"),
        ("ERROR", "database connection lost during a statement: 57P02"),
        ("ERROR", "database statement outcome unknown: network error"),
    ]


def test_connecting_and_waiting_failures_are_logged_with_their_reason(service_logs):
    def refuse(**kwargs):
        raise InterfaceError("Can't create a connection to host 127.0.0.1")

    with pytest.raises(DatabaseUnavailable):
        Database(SETTINGS, connect=refuse).run("SELECT 1")
    full = Database(SETTINGS, connect=Fake, max_open=1, timeout=0.05)
    full._acquire()
    with pytest.raises(DatabaseUnavailable):
        full.run("SELECT 1")

    assert [(r.levelname, r.getMessage()) for r in records(service_logs, "chalicelib.db")] == [
        ("ERROR", "cannot connect to the database: InterfaceError: Can't create a connection to host 127.0.0.1"),
        ("ERROR", "no database connection free within 0.1 s"),
    ]


def test_a_server_with_backslash_escapes_is_refused_with_that_reason_in_the_log(service_logs):
    class Old(Fake):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parameter_statuses = {"standard_conforming_strings": "off"}

    with pytest.raises(DatabaseUnavailable):
        Database(SETTINGS, connect=Old).run("SELECT 1")

    assert [r.getMessage() for r in records(service_logs, "chalicelib.db")] == [
        "the database must run with standard_conforming_strings=on; refusing the connection"]


@pytest.mark.parametrize("detail, gone", [
    ({"V": "FATAL", "C": "XX000"}, True), ({"V": "PANIC"}, True), ({"S": "FATAL"}, True),
    ({"V": "ERROR", "S": "FATAL"}, False),  # V, the untranslated severity, wins over S
    ({"C": "08P01"}, True), ({"C": "57P03"}, True), ({"C": "57014"}, False), ({"C": "XX08"}, False), ({}, False),
])
def test_which_server_errors_mean_the_connection_is_gone(detail, gone):
    assert db._connection_gone(DatabaseError(detail)) is gone


# The connection: construction and authentication

@pytest.fixture
def core(monkeypatch):
    """pg8000's own connection steps replaced by recorders: nothing here opens a socket."""
    calls = []
    monkeypatch.setattr(pg8000.native.Connection, "__init__", lambda self, *a, **k: calls.append(("init", a, k)))
    monkeypatch.setattr(pg8000.core.CoreConnection, "handle_AUTHENTICATION_REQUEST",
                        lambda self, data, context: calls.append(("auth", data, context)))
    return calls


def authenticating_init(answer_ok):
    """pg8000's __init__ as far as authentication goes: its loop ends having (or not having) accepted an OK."""
    def init(self, *args, **kwargs):
        init.calls.append((args, kwargs))
        if answer_ok:
            self._phase = db.AUTHENTICATED
    init.calls = []
    return init


def test_a_connection_keeps_its_channel_binding_and_passes_everything_else_to_pg8000(monkeypatch):
    init = authenticating_init(answer_ok=True)
    monkeypatch.setattr(pg8000.native.Connection, "__init__", init)

    conn = Connection("u", host="h", channel_binding="require")
    default = Connection(user="u")

    assert (conn._channel_binding, conn._bound, default._channel_binding, default._bound) == (
        "require", False, "prefer", False)
    assert (conn._phase, default._phase) == (db.ESTABLISHED, db.ESTABLISHED)
    assert init.calls == [(("u",), {"host": "h"}), ((), {"user": "u"})]


def test_a_start_up_that_ends_without_authentication_ok_is_refused_and_closed(monkeypatch):
    monkeypatch.setattr(pg8000.native.Connection, "__init__", authenticating_init(answer_ok=False))
    closed = []
    monkeypatch.setattr(pg8000.core.CoreConnection, "close", lambda self: closed.append(True))

    with pytest.raises(InterfaceError, match="^the server never completed authentication$"):
        Connection(user="u")
    assert closed == [True]


@pytest.mark.parametrize("phase, code, refusal", [
    (db.AUTHENTICATING, b"R", None), (db.AUTHENTICATING, b"E", None), (db.AUTHENTICATING, b"v", None),
    (db.AUTHENTICATING, b"Z", "expected an authentication request from the server, but received 'Z'"),
    (db.AUTHENTICATING, b"S", "expected an authentication request from the server, but received 'S'"),
    (db.AUTHENTICATING, b"K", "expected an authentication request from the server, but received 'K'"),
    (db.AUTHENTICATING, b"N", "expected an authentication request from the server, but received 'N'"),
    (db.AUTHENTICATING, b"D", "expected an authentication request from the server, but received 'D'"),
    (db.AUTHENTICATING, b"\xff", "expected an authentication request from the server, but received '\xff'"),
    (db.AUTHENTICATED, b"S", None), (db.AUTHENTICATED, b"K", None), (db.AUTHENTICATED, b"N", None),
    (db.AUTHENTICATED, b"E", None), (db.AUTHENTICATED, b"Z", None),
    (db.AUTHENTICATED, b"R", "unexpected message 'R' from the server after authentication, before it was ready"),
    (db.AUTHENTICATED, b"v", "unexpected message 'v' from the server after authentication, before it was ready"),
    (db.AUTHENTICATED, b"C", "unexpected message 'C' from the server after authentication, before it was ready"),
    (db.ESTABLISHED, b"D", None), (db.ESTABLISHED, b"Z", None),
])
def test_which_messages_each_phase_of_start_up_accepts(phase, code, refusal):
    assert db.startup_refusal(phase, code) == refusal


def test_during_start_up_pg8000_finds_only_the_handlers_the_phase_allows():
    conn = Connection.__new__(Connection)
    handlers = {b"R": "auth", b"Z": "ready", b"S": "status"}
    conn.message_types = handlers  # as pg8000's __init__ assigns it
    conn._phase = db.AUTHENTICATING

    assert conn.message_types[b"R"] == "auth"
    assert conn.message_types[b"v"] == conn.handle_NEGOTIATE_PROTOCOL_VERSION
    with pytest.raises(InterfaceError, match="^expected an authentication request from the server, but received 'Z'$"):
        conn.message_types[b"Z"]
    conn._phase = db.AUTHENTICATED
    assert (conn.message_types[b"Z"], conn.message_types[b"S"]) == ("ready", "status")
    conn._phase = db.ESTABLISHED
    assert conn.message_types is handlers


@pytest.mark.parametrize("data, refusal", [
    (struct.pack("!ii", 0, 0), "the server does not speak protocol 3.0 as asked: it offers 3.0"),
    (struct.pack("!ii", 2, 1) + b"_pq_.x\x00",
     "the server does not speak protocol 3.0 as asked: it offers 3.2 and does not know _pq_.x"),
])
def test_a_protocol_negotiation_ends_the_start_up_with_its_reason(data, refusal):
    with pytest.raises(InterfaceError) as raised:
        Connection.__new__(Connection).handle_NEGOTIATE_PROTOCOL_VERSION(data, "ctx")
    assert str(raised.value) == refusal


def auth_request(code, rest=b""):
    return struct.pack("!i", code) + rest


def bare(channel_binding, bound=False, proved=False, started=None):
    conn = Connection.__new__(Connection)
    conn._channel_binding, conn._bound, conn._server_proved = channel_binding, bound, proved
    conn._scram_started = bound if started is None else started
    conn._phase = db.AUTHENTICATING
    return conn


WEAKER = "channel_binding=require, but the server answered with authentication {} instead of completing " \
         "SCRAM-SHA-256-PLUS"


@pytest.mark.parametrize("mode, code, bound, proved, refusal", [
    ("require", 3, False, False, WEAKER.format(3)),
    ("require", 5, False, False, WEAKER.format(5)),
    ("require", 0, False, False, WEAKER.format(0)),
    # PLUS started but the server never sent its signed final message: an impostor's "OK".
    ("require", 0, True, False, WEAKER.format(0)),
    ("require", 7, False, False, "channel_binding=require refuses authentication 7"),
    ("require", 2, True, False, "channel_binding=require refuses authentication 2"),
    ("require", 11, False, False, "channel_binding=require, but SCRAM step 11 came unasked"),
    ("require", 12, False, False, "channel_binding=require, but SCRAM step 12 came unasked"),
    ("require", 0, True, True, None), ("require", 11, True, False, None), ("require", 12, True, False, None),
    ("prefer", 3, False, False, None), ("prefer", 0, False, False, None), ("disable", 5, False, False, None),
])
def test_which_authentication_requests_channel_binding_lets_through(core, mode, code, bound, proved, refusal):
    conn = bare(mode, bound, proved)
    data = auth_request(code, b"salt")

    if refusal:
        with pytest.raises(ChannelBindingRefused) as raised:
            conn.handle_AUTHENTICATION_REQUEST(data, "ctx")
        assert str(raised.value) == refusal and core == [] and conn._phase == db.AUTHENTICATING
    else:
        conn.handle_AUTHENTICATION_REQUEST(data, "ctx")
        assert core == [("auth", data, "ctx")]
        assert conn._server_proved == (proved or code == 12)  # only the final message proves the server
        assert conn._phase == (db.AUTHENTICATED if code == 0 else db.AUTHENTICATING)  # only OK ends authentication


@pytest.mark.parametrize("mode", ["prefer", "disable"])
@pytest.mark.parametrize("code, started, proved, refusal", [
    (11, False, False, "the server sent SCRAM step 11 without asking for SCRAM"),
    (12, False, False, "the server sent SCRAM step 12 without asking for SCRAM"),
    # SCRAM started (with or without binding) and "OK" came before the server's signed final message.
    (0, True, False, "the server answered OK without completing SCRAM"),
    (0, True, True, None), (11, True, False, None), (12, True, False, None),
])
def test_a_scram_exchange_is_finished_by_the_server_before_ok_whatever_the_channel_binding(
        core, mode, code, started, proved, refusal):
    conn = bare(mode, proved=proved, started=started)
    data = auth_request(code, b"x")

    if refusal:
        with pytest.raises(InterfaceError) as raised:
            conn.handle_AUTHENTICATION_REQUEST(data, "ctx")
        assert str(raised.value) == refusal and core == [] and conn._phase == db.AUTHENTICATING
    else:
        conn.handle_AUTHENTICATION_REQUEST(data, "ctx")
        assert core == [("auth", data, "ctx")]


def test_a_scram_proof_that_does_not_check_out_is_a_connection_failure_not_a_crash(core, monkeypatch):
    import scramp
    from pg8000.exceptions import InterfaceError

    def forged(self, data, context):
        raise scramp.ScramException("Invalid server signature")

    monkeypatch.setattr("pg8000.native.Connection.handle_AUTHENTICATION_REQUEST", forged)
    conn = bare("require", bound=True)

    with pytest.raises(InterfaceError, match="^the server's SCRAM proof failed: Invalid server signature$"):
        conn.handle_AUTHENTICATION_REQUEST(auth_request(12, b"v=forged"), "ctx")
    assert conn._server_proved is False


@pytest.mark.parametrize("mode", ["require", "prefer", "disable"])
def test_a_sasl_request_starts_scram_with_the_offered_mechanisms(core, mode):
    conn = bare(mode)
    started = []
    conn._start_scram = started.append

    conn.handle_AUTHENTICATION_REQUEST(auth_request(10, f"{PLUS}\x00{PLAIN}\x00\x00".encode()), "ctx")

    assert started == [[PLUS, PLAIN]] and core == []


class Tls(ssl.SSLSocket):
    def __init__(self):  # an SSLSocket in type only: nothing is opened
        pass


class Scram:
    made = []

    def __init__(self, mechanisms, user, password, channel_binding=None):
        self.mechanism_name = mechanisms[0]
        Scram.made.append((mechanisms, user, password, channel_binding))

    def get_client_first(self):
        return "n,,n=,r=nonce"


@pytest.fixture
def scram(monkeypatch):
    import scramp

    Scram.made = []
    flushed = []
    monkeypatch.setattr(scramp, "ScramClient", Scram)
    monkeypatch.setattr(db, "_flush", flushed.append)
    return flushed


def scram_conn(mode, tls, password=b"pw"):
    conn = bare(mode)
    conn._usock = Tls() if tls else object()
    conn._sock, conn.user, conn.password, conn.sent = "sock", b"app", password, []
    conn._send_message = lambda code, data: conn.sent.append((code, data))
    return conn


FIRST = b"n,,n=,r=nonce"


@pytest.mark.parametrize("mode, tls, mechanisms, bound_to_tls", [
    ("require", True, [PLUS], True),
    ("prefer", True, [PLUS, PLAIN], True),
    ("prefer", False, [PLAIN], False),
    ("disable", True, [PLAIN], False),
    ("disable", False, [PLAIN], False),
])
def test_scram_binds_to_the_tls_channel_when_it_can_and_must(scram, mode, tls, mechanisms, bound_to_tls):
    conn = scram_conn(mode, tls)

    conn._start_scram([PLUS, PLAIN])

    binding = ("tls-server-end-point", conn._usock) if bound_to_tls else None
    assert Scram.made == [(mechanisms, "app", "pw", binding)]
    assert conn.sent == [(b"p", mechanisms[0].encode() + b"\x00" + len(FIRST).to_bytes(4, "big") + FIRST)]
    assert scram == ["sock"] and conn._bound is (mode == "require") and conn._scram_started is True


@pytest.mark.parametrize("tls, offered", [(False, [PLUS, PLAIN]), (True, [PLAIN])])
def test_required_channel_binding_without_tls_or_without_plus_is_refused_before_any_proof(scram, tls, offered):
    conn = scram_conn("require", tls)

    with pytest.raises(ChannelBindingRefused) as raised:
        conn._start_scram(offered)

    assert str(raised.value) == "channel_binding=require, but the server does not offer SCRAM-SHA-256-PLUS over TLS"
    assert (Scram.made, conn.sent, conn._bound, conn._scram_started) == ([], [], False, False)


def test_scram_without_a_password_is_refused(scram):
    conn = scram_conn("prefer", False, password=None)

    with pytest.raises(InterfaceError, match="^server requesting SCRAM authentication, but no password was provided$"):
        conn._start_scram([PLAIN])

    assert conn.sent == []


# The connection: one statement over a stream of server messages

def message(code, payload=b""):
    return code + struct.pack("!i", len(payload) + 4) + payload


def error(**fields):
    return message(b"E", json.dumps(fields).encode())


ROW, DONE, READY = message(b"D", b"row"), message(b"C", b"SELECT 1\x00"), message(b"Z", b"I")


class Stream(io.BytesIO):
    def __init__(self, data, flush_fails=False):
        super().__init__(data)
        self.flush_fails = flush_fails

    def flush(self):
        if self.flush_fails:
            raise OSError("broken pipe")


def runner(answer=b"", *, spoke=False, send_fails=False, flush_fails=False):
    conn = Connection.__new__(Connection)
    conn._sock, conn._client_encoding, conn.sent = Stream(answer, flush_fails), "utf8", []
    conn._peer_spoke = lambda: spoke

    def send(code, data):
        if send_fails:
            raise InterfaceError("network error")
        conn.sent.append((code, data))

    def row(data, context):
        context.rows = (context.rows or []) + [data.decode()]

    def failure(data, context):
        context.error = DatabaseError(json.loads(data))

    conn._send_message = send
    conn.message_types = {b"D": row, b"C": lambda data, context: None, b"Z": lambda data, context: None,
                          b"T": lambda data, context: None, b"E": failure}
    return conn


def test_a_statement_is_one_simple_query_whose_rows_are_read_up_to_ready_for_query():
    conn = runner(message(b"T") + ROW + ROW + DONE + READY + b"next")

    assert conn.run_once("SELECT 'é'") == ["row", "row"]

    assert conn.sent == [(b"Q", "SELECT 'é'".encode() + b"\x00")]
    assert conn._context.statement == "SELECT 'é'" and conn._sock.read() == b"next"  # nothing read past the end


def test_a_statement_is_not_sent_on_a_connection_the_server_already_closed():
    conn = runner(spoke=True)

    with pytest.raises(NotSent, match="^the server closed this idle connection$"):
        conn.run_once("SELECT 1")
    assert conn.sent == []


def test_a_statement_that_cannot_be_encoded_fails_before_anything_is_sent():
    conn = runner()

    with pytest.raises(UnicodeEncodeError):
        conn.run_once("SELECT '\udc80'")
    assert conn.sent == []


@pytest.mark.parametrize("failure", [{"send_fails": True}, {"flush_fails": True}])
def test_a_failed_send_is_not_sent(failure):
    conn = runner(**failure)

    with pytest.raises(NotSent, match="^sending failed$") as raised:
        conn.run_once("SELECT 1")
    assert isinstance(raised.value.__cause__, InterfaceError)


@pytest.mark.parametrize("severity", [{"S": "FATAL"}, {"V": "FATAL"}, {"V": "PANIC"}])
def test_an_admin_shutdown_as_the_first_answer_proves_the_statement_never_ran(severity):
    conn = runner(error(**severity, C="57P01", M="terminating connection due to administrator command"))

    with pytest.raises(NotSent, match="^the server shut the connection down before running the statement$") as raised:
        conn.run_once("UPDATE t SET x = 1")
    assert raised.value.__cause__.args[0]["C"] == "57P01"


@pytest.mark.parametrize("answer, code", [
    (message(b"T") + error(V="FATAL", C="57P01", M="shutdown"), "57P01"),  # after another answer: it may have run
    (error(V="FATAL", C="57P02", M="crash"), "57P02"),
    (error(V="PANIC", C="XX000", M="panic"), "XX000"),
])
def test_a_fatal_error_ends_the_statement_at_once_and_is_raised(answer, code):
    conn = runner(answer + b"unread")

    with pytest.raises(DatabaseError) as raised:
        conn.run_once("UPDATE t SET x = 1")
    assert raised.value.args[0]["C"] == code and conn._sock.read() == b"unread"


def test_a_statement_error_is_raised_once_the_server_is_ready_again():
    conn = runner(error(V="ERROR", S="FATAL", C="23505", M="duplicate key") + READY + b"next")

    with pytest.raises(DatabaseError) as raised:
        conn.run_once("INSERT")
    assert raised.value.args[0]["C"] == "23505" and conn._sock.read() == b"next"


def test_an_answer_cut_short_is_an_interface_error_not_a_not_sent():
    conn = runner(ROW + b"D\x00\x00")

    with pytest.raises(InterfaceError):
        conn.run_once("SELECT 1")


# The connection: did the server speak while it was idle?

class Poller:
    def __init__(self, events):
        self.events, self.registered, self.timeouts = events, [], []

    def register(self, sock, mask):
        self.registered.append((sock, mask))

    def poll(self, timeout):
        self.timeouts.append(timeout)
        return self.events


@pytest.fixture
def poll(monkeypatch):
    made = []

    def poller():
        made.append(Poller(poll.events))
        return made[-1]

    poll = SimpleNamespace(made=made, events=[])
    monkeypatch.setattr(db, "select", SimpleNamespace(poll=poller, POLLIN=select.POLLIN, POLLERR=select.POLLERR,
                                                      POLLHUP=select.POLLHUP))
    return poll


def idle(usock):
    conn = Connection.__new__(Connection)
    conn._usock = usock
    return conn


@pytest.mark.parametrize("events, spoke", [([], False), ([(3, select.POLLIN)], True), ([(3, select.POLLHUP)], True)])
def test_an_idle_socket_is_asked_without_waiting_for_input_errors_and_hang_ups(poll, events, spoke):
    usock = SimpleNamespace(pending=lambda: 0)
    poll.events = events

    assert idle(usock)._peer_spoke() is spoke
    (poller,) = poll.made
    assert poller.registered == [(usock, select.POLLIN | select.POLLERR | select.POLLHUP)] and poller.timeouts == [0]


def test_bytes_already_decrypted_by_tls_count_as_the_server_speaking(poll):
    assert idle(SimpleNamespace(pending=lambda: 1))._peer_spoke() is True
    assert poll.made == []


def test_a_plain_socket_without_pending_is_polled(poll):
    assert idle(object())._peer_spoke() is False and len(poll.made) == 1
