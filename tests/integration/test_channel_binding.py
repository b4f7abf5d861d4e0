"""Start-up and channel_binding with libpq's meanings, against impostors: fake servers that terminate TLS (as
someone in the path would with sslmode=require, which checks no certificate) and then skip or weaken
authentication. Each impostor counts the statements and passwords it receives; every one of them must get none."""

import base64
import socket
import ssl
import struct
import tempfile
import threading

import pytest

from chalicelib.config import ConfigError, DatabaseSettings
from chalicelib.db import Database
from chalicelib.errors import DatabaseUnavailable
from tests.helpers import self_signed_certificate

PASSWORD = "the-real-p4ssword"
PLUS = b"SCRAM-SHA-256-PLUS"


def message(code: bytes, payload: bytes = b"") -> bytes:
    return code + struct.pack("!i", len(payload) + 4) + payload


def authentication(code: int, rest: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + rest)


CLEARTEXT = authentication(3)
MD5 = authentication(5, b"salt")
SCRAM = authentication(10, b"SCRAM-SHA-256\x00\x00")
SCRAM_AND_PLUS = authentication(10, PLUS + b"\x00SCRAM-SHA-256\x00\x00")
OK = authentication(0)
READY = message(b"Z", b"I")
SETTINGS_REPORT = message(b"S", b"standard_conforming_strings\x00on\x00") + message(b"K", struct.pack("!ii", 7, 7))


def server_first(client_first: bytes) -> bytes:
    """SASLContinue with a server-first message that extends the client's nonce, as a real server's would."""
    nonce = client_first.split(b"r=", 1)[1].split(b",")[0]
    salt = base64.b64encode(b"sixteen byte salt")
    return authentication(11, b"r=" + nonce + b"impostor,s=" + salt + b",i=4096")


class FakeServer:
    """Accepts one connection: TLS if asked, reads the start-up message, sends `greeting`, then answers the
    client's messages in turn from `replies` (bytes, or a function of the client's message) and records them all."""

    def __init__(self, greeting: bytes, *replies, certificate_for: str = "localhost"):
        self.greeting, self.replies = greeting, list(replies)
        self.messages = []  # (type, payload) of every message the client sent after its start-up message
        cert, key = self_signed_certificate(certificate_for)
        self.certificate = cert
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
            pem.write(cert + key)
            pem.flush()
            self._context.load_cert_chain(pem.name)
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        conn, _ = self._listener.accept()
        conn.settimeout(5)
        try:
            length = struct.unpack("!i", self._read(conn, 4))[0]
            body = self._read(conn, length - 4)
            if struct.unpack("!i", body[:4])[0] == 80877103:  # SSLRequest
                conn.sendall(b"S")
                conn = self._context.wrap_socket(conn, server_side=True)  # fails when the client refuses the cert
                length = struct.unpack("!i", self._read(conn, 4))[0]
                self._read(conn, length - 4)
            conn.sendall(self.greeting)
            conn.settimeout(1)  # a client that gives up closes; one that answers does so at once
            while True:
                code = self._read(conn, 1)
                payload = self._read(conn, struct.unpack("!i", self._read(conn, 4))[0] - 4)
                self.messages.append((code, payload))
                if code == b"X":
                    break
                if self.replies:
                    reply = self.replies.pop(0)
                    conn.sendall(reply(payload) if callable(reply) else reply)
        except (OSError, EOFError):
            pass
        conn.close()

    @staticmethod
    def _read(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def finish(self):
        self._thread.join(5)
        self._listener.close()
        return self

    @property
    def statements(self) -> int:
        """Simple queries and extended-protocol Parse messages: each would carry SQL to the impostor."""
        return sum(code in (b"Q", b"P") for code, _ in self.messages)

    @property
    def passwords(self) -> int:
        """Messages that hand over the password or a hash of it that can be replayed (cleartext or MD5). A SCRAM
        message ('p' too) holds only a nonce or a proof bound to this exchange and this TLS certificate."""
        return sum(code == b"p" and (PASSWORD.encode() in payload or payload.startswith(b"md5"))
                   for code, payload in self.messages)

    @property
    def types(self) -> bytes:
        return b"".join(code for code, _ in self.messages)


def connect(server, query):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{server.port}/db?{query}"
    Database(DatabaseSettings.from_url(url), timeout=3).run("SELECT 1")


REQUIRE = "sslmode=require&channel_binding=require"

IMPOSTORS = {
    # "Come in": no authentication request at all, straight to ReadyForQuery.
    "no-authentication": (READY,),
    # The session's settings and key, then ready, all before any authentication.
    "settings-before-authentication": (SETTINGS_REPORT + READY,),
    # "OK" with nothing asked, as a trust-authenticated server would say.
    "ok-without-asking": (OK + SETTINGS_REPORT + READY,),
    # SCRAM-SHA-256-PLUS offered, the client's first message taken, then ReadyForQuery.
    "plus-then-ready": (SCRAM_AND_PLUS, READY),
    # SCRAM-SHA-256-PLUS offered and "OK" as the answer to the client's first message.
    "plus-then-ok": (SCRAM_AND_PLUS, OK + READY),
    # The exchange run up to the client's proof, then "OK" instead of the server's signed final message, which
    # only a server that knows the password can make.
    "ok-without-the-servers-final-message": (SCRAM_AND_PLUS, server_first, OK + SETTINGS_REPORT + READY),
    # A final message whose signature is made up.
    "forged-final-message": (SCRAM_AND_PLUS, server_first,
                             authentication(12, b"v=" + base64.b64encode(b"x" * 32)) + OK + READY),
    "cleartext": (CLEARTEXT, OK + READY),
    "md5": (MD5, OK + READY),
    "scram-without-plus": (SCRAM, OK + READY),
}


@pytest.mark.parametrize("script", IMPOSTORS.values(), ids=IMPOSTORS.keys())
def test_an_impostor_under_channel_binding_require_gets_no_statement_and_no_password(script):
    server = FakeServer(*script)

    with pytest.raises(DatabaseUnavailable):
        connect(server, REQUIRE)
    server.finish()

    assert (server.statements, server.passwords) == (0, 0)
    assert server.types in (b"X", b"pX", b"ppX")  # at most SCRAM's two client messages, then Terminate


@pytest.mark.parametrize("query", ["sslmode=require", "sslmode=disable", "sslmode=require&channel_binding=disable"])
@pytest.mark.parametrize("script", [IMPOSTORS["no-authentication"], IMPOSTORS["settings-before-authentication"],
                                    IMPOSTORS["plus-then-ready"]],
                         ids=["no-authentication", "settings-before-authentication", "scram-then-ready"])
def test_whatever_the_channel_binding_a_server_that_skips_authentication_gets_no_statement(script, query):
    server = FakeServer(*script)

    with pytest.raises(DatabaseUnavailable):
        connect(server, query)
    server.finish()

    assert (server.statements, server.passwords) == (0, 0)


@pytest.mark.parametrize("query", ["sslrootcert=system", "sslrootcert=system&sslmode=verify-full",
                                   "sslrootcert=system&channel_binding=prefer"])
def test_under_the_system_roots_a_self_signed_impostor_asking_for_the_cleartext_password_gets_nothing(query):
    server = FakeServer(CLEARTEXT, OK + READY)

    with pytest.raises(DatabaseUnavailable):
        connect(server, query)
    server.finish()

    assert (server.statements, server.passwords, server.messages) == (0, 0, [])  # TLS was refused: nothing at all


def test_verify_ca_without_a_root_certificate_stops_start_up_before_an_impostor_with_a_public_certificate_is_met(
        monkeypatch, tmp_path):
    # The impostor holds a certificate the system's authorities vouch for, issued for a name of its own: whoever
    # owns a domain can get one. Checking the authority without the host name would accept it (libpq refuses
    # verify-ca without sslrootcert for this reason).
    server = FakeServer(CLEARTEXT, OK + READY, certificate_for="impostor.example")
    system_roots = tmp_path / "system-roots.pem"
    system_roots.write_bytes(server.certificate)
    monkeypatch.setenv("SSL_CERT_FILE", str(system_roots))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    with pytest.raises(Exception) as caught:
        connect(server, "sslmode=verify-ca")
    with socket.create_connection(("127.0.0.1", server.port)):
        pass  # lets the impostor's accept return when nobody came, so that it finishes
    server.finish()

    assert (server.statements, server.passwords) == (0, 0)
    assert caught.type is ConfigError
    assert str(caught.value) == ("DATABASE_URL has sslmode=verify-ca without sslrootcert: the system's authorities "
                                 "vouch for any public name, so name the CA file in sslrootcert, or use "
                                 "sslmode=verify-full")


def test_channel_binding_prefer_answers_a_cleartext_request_as_libpq_does():
    server = FakeServer(CLEARTEXT)

    with pytest.raises(DatabaseUnavailable):
        connect(server, "sslmode=require&channel_binding=prefer")

    assert server.finish().passwords == 1


@pytest.mark.parametrize("mode, mechanism, gs2", [("disable", b"SCRAM-SHA-256\x00", b"n,,"),
                                                  ("prefer", PLUS + b"\x00", b"p=tls-server-end-point,,"),
                                                  ("require", PLUS + b"\x00", b"p=tls-server-end-point,,")])
def test_scram_uses_channel_binding_unless_it_is_disabled(mode, mechanism, gs2):
    server = FakeServer(SCRAM_AND_PLUS)

    with pytest.raises(DatabaseUnavailable):
        connect(server, f"sslmode=require&channel_binding={mode}")
    server.finish()

    code, first = server.messages[0]
    assert code == b"p" and first.startswith(mechanism)
    assert first[len(mechanism) + 4:].startswith(gs2)
