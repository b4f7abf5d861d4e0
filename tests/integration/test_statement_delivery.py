"""How `Connection.run_once` tells "never ran" from "may have run", against a scripted server on a real socket."""

import socket
import struct
import threading
import time

import pytest
from pg8000.exceptions import DatabaseError, InterfaceError

from chalicelib.db import Connection, NotSent


def message(code: bytes, body: bytes = b"") -> bytes:
    return code + struct.pack("!i", len(body) + 4) + body


READY = message(b"Z", b"I")
AUTH_OK = message(b"R", struct.pack("!i", 0))


def error(severity: str, code: str) -> bytes:
    fields = f"S{severity}\x00V{severity}\x00C{code}\x00Mbye\x00\x00".encode()
    return message(b"E", fields)


class ScriptedServer:
    """Completes the start-up, then answers the first query by calling `on_query(conn)`."""

    def __init__(self, on_query=None, after_startup=None):
        self.queries = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._on_query = on_query
        self._after_startup = after_startup
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            self._script()
        except OSError:
            pass  # the client hung up, as some of the tests mean it to

    def _script(self):
        conn, _ = self._listener.accept()
        conn.settimeout(5)
        length = struct.unpack("!i", conn.recv(4))[0]
        conn.recv(length - 4)
        conn.sendall(AUTH_OK + message(b"S", b"standard_conforming_strings\x00on\x00") + READY)
        if self._after_startup:
            self._after_startup(conn)
            return
        while True:
            header = conn.recv(5)
            if not header or header[:1] != b"Q":
                break
            body = conn.recv(struct.unpack("!i", header[1:])[0] - 4)
            self.queries.append(body)
            self._on_query(conn)

    def close(self):
        self._listener.close()


def client(server):
    return Connection(user="app", host="127.0.0.1", port=server.port, timeout=1, ssl_context=False)


def test_a_connection_the_server_closed_while_idle_is_not_sent_on():
    server = ScriptedServer(after_startup=lambda conn: (conn.sendall(error("FATAL", "57P01")), conn.close()))
    conn = client(server)
    time.sleep(0.2)

    with pytest.raises(NotSent):
        conn.run_once("UPDATE t SET x = 1")
    server.close()


def test_an_admin_shutdown_as_the_first_answer_means_the_statement_never_ran():
    server = ScriptedServer(on_query=lambda conn: (conn.sendall(error("FATAL", "57P01")), conn.close()))

    with pytest.raises(NotSent):
        client(server).run_once("UPDATE t SET x = 1")
    assert len(server.queries) == 1
    server.close()


def test_a_crash_after_the_statement_arrived_may_have_run():
    server = ScriptedServer(on_query=lambda conn: (conn.sendall(error("FATAL", "57P02")), conn.close()))

    with pytest.raises(DatabaseError) as raised:
        client(server).run_once("UPDATE t SET x = 1")
    assert raised.value.args[0]["C"] == "57P02"
    server.close()


def test_an_admin_shutdown_after_part_of_the_answer_may_have_run():
    row_description = message(b"T", struct.pack("!h", 1) + b"x\x00" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0))
    server = ScriptedServer(on_query=lambda conn: (conn.sendall(row_description + error("FATAL", "57P01")),
                                                  conn.close()))

    with pytest.raises(DatabaseError):
        client(server).run_once("UPDATE t SET x = 1 RETURNING x")
    server.close()


@pytest.mark.parametrize("silence", ["closes", "never answers"])
def test_a_statement_sent_and_then_unanswered_is_a_network_error_not_a_resend(silence):
    """pg8000 raises InterfaceError, or the socket's own TimeoutError (an OSError) on a first read that times out:
    Database.run answers both with DatabaseOutcomeUnknown."""
    def on_query(conn):
        if silence == "closes":
            conn.close()
        else:
            time.sleep(2)

    server = ScriptedServer(on_query=on_query)

    with pytest.raises((InterfaceError, OSError)) as raised:
        client(server).run_once("UPDATE t SET x = 1")
    assert not isinstance(raised.value, NotSent) and len(server.queries) == 1
    server.close()


def test_an_answered_statement_returns_its_rows():
    row_description = message(b"T", struct.pack("!h", 1) + b"x\x00" + struct.pack("!ihihih", 0, 0, 25, -1, -1, 0))
    row = message(b"D", struct.pack("!h", 1) + struct.pack("!i", 2) + b"hi")
    done = message(b"C", b"SELECT 1\x00")
    server = ScriptedServer(on_query=lambda conn: conn.sendall(row_description + row + done + READY))

    assert client(server).run_once("SELECT 'hi'") == [["hi"]]
    server.close()


class MalformedStartup:
    """Reads the start-up message and answers with `reply` on a real socket, then hangs up."""

    def __init__(self, reply: bytes):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self._listener.accept()
        try:
            length = struct.unpack("!i", conn.recv(4))[0]
            conn.recv(length - 4)
            conn.sendall(self._reply)
            time.sleep(0.5)
        finally:
            conn.close()
            self._listener.close()


@pytest.mark.parametrize("reply", [
    b"R" + struct.pack("!i", 0),  # a length below the header's own four bytes
    b"R" + struct.pack("!i", 3),
    b"R" + struct.pack("!i", 4),  # an authentication request without its code
    b"R" + struct.pack("!i", 6) + b"\x00\x00",
], ids=["length 0", "length 3", "no body", "short body"])
def test_a_malformed_start_up_message_is_the_database_being_unavailable(reply):
    from chalicelib.config import DatabaseSettings
    from chalicelib.db import Database
    from chalicelib.errors import DatabaseUnavailable

    server = MalformedStartup(reply)
    database = Database(DatabaseSettings.from_url(f"postgresql://app@127.0.0.1:{server.port}/db?sslmode=disable"),
                        timeout=2)

    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 1")


def test_a_malformed_message_after_the_statement_went_out_is_an_unknown_outcome():
    from chalicelib.config import DatabaseSettings
    from chalicelib.db import Database
    from chalicelib.errors import DatabaseOutcomeUnknown

    server = ScriptedServer(on_query=lambda conn: conn.sendall(b"C" + struct.pack("!i", 0)))
    database = Database(DatabaseSettings.from_url(f"postgresql://app@127.0.0.1:{server.port}/db?sslmode=disable"),
                        timeout=1)

    with pytest.raises(DatabaseOutcomeUnknown):
        database.run("UPDATE t SET x = 1")
    assert len(server.queries) == 1
    server.close()
