"""channel_binding with libpq's meanings, against a fake server that terminates TLS (as someone in the path would
with sslmode=require, which checks no certificate) and then asks for the password in a weaker way."""

import socket
import ssl
import struct
import threading

import pytest

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.errors import DatabaseUnavailable
from tests.helpers import self_signed_certificate

PASSWORD = "the-real-p4ssword"
CLEARTEXT = struct.pack("!i", 3)
MD5 = struct.pack("!i", 5) + b"salt"
SCRAM = struct.pack("!i", 10) + b"SCRAM-SHA-256\x00\x00"
NO_AUTHENTICATION = struct.pack("!i", 0)
SCRAM_AND_PLUS = struct.pack("!i", 10) + b"SCRAM-SHA-256-PLUS\x00SCRAM-SHA-256\x00\x00"


class FakeServer:
    """Accepts one connection: TLS if asked, reads the startup message, sends one authentication request and
    records every byte the client writes afterwards."""

    def __init__(self, request: bytes, then: bytes = b""):
        self.request = request
        self.then = then  # sent once the client's first answer arrives
        self.received = b""
        cert, key = self_signed_certificate("localhost")
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        import tempfile

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
        length = struct.unpack("!i", self._read(conn, 4))[0]
        body = self._read(conn, length - 4)
        if struct.unpack("!i", body[:4])[0] == 80877103:  # SSLRequest
            conn.sendall(b"S")
            conn = self._context.wrap_socket(conn, server_side=True)
            length = struct.unpack("!i", self._read(conn, 4))[0]
            self._read(conn, length - 4)
        ready = b"Z\x00\x00\x00\x05I" if self.request == NO_AUTHENTICATION else b""  # "come in", no password asked
        conn.sendall(b"R" + struct.pack("!i", len(self.request) + 4) + self.request + ready)
        conn.settimeout(0.5)  # then hang up, so a client that did answer fails fast
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                self.received += chunk
                if self.then:
                    conn.sendall(self.then)
                    self.then = b""
        except OSError:
            pass
        conn.close()

    @staticmethod
    def _read(conn, n):
        data = b""
        while len(data) < n:
            data += conn.recv(n - len(data))
        return data

    def finish(self):
        self._thread.join(5)
        self._listener.close()
        return self.received


def connect(server, query):
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{server.port}/db?{query}"
    Database(DatabaseSettings.from_url(url), timeout=3).run("SELECT 1")


@pytest.mark.parametrize("request_", [CLEARTEXT, MD5, SCRAM, NO_AUTHENTICATION],
                         ids=["cleartext", "md5", "scram-without-plus", "no-authentication"])
def test_channel_binding_require_refuses_weaker_authentication_before_anything_secret_is_written(request_):
    server = FakeServer(request_)

    with pytest.raises(DatabaseUnavailable):
        connect(server, "sslmode=require&channel_binding=require")
    received = server.finish()

    assert PASSWORD.encode() not in received
    assert received == b"X\x00\x00\x00\x04"  # only Terminate: no password, hash or SCRAM message ('p')


def test_channel_binding_prefer_answers_a_cleartext_request_as_libpq_does():
    server = FakeServer(CLEARTEXT)

    with pytest.raises(DatabaseUnavailable):
        connect(server, "sslmode=require&channel_binding=prefer")

    assert PASSWORD.encode() in server.finish()


@pytest.mark.parametrize("mode, mechanism, gs2", [("disable", b"SCRAM-SHA-256\x00", b"n,,"),
                                                  ("prefer", b"SCRAM-SHA-256-PLUS\x00", b"p=tls-server-end-point,,"),
                                                  ("require", b"SCRAM-SHA-256-PLUS\x00", b"p=tls-server-end-point,,")])
def test_scram_uses_channel_binding_unless_it_is_disabled(mode, mechanism, gs2):
    server = FakeServer(SCRAM_AND_PLUS)

    with pytest.raises(DatabaseUnavailable):
        connect(server, f"sslmode=require&channel_binding={mode}")
    received = server.finish()

    first = received[5:]  # after the 'p' message header
    assert received[:1] == b"p" and first.startswith(mechanism)
    assert first[len(mechanism) + 4:].startswith(gs2)


def test_channel_binding_require_believes_ok_only_after_the_server_proved_itself_on_this_channel():
    # Someone in the path offers SCRAM-SHA-256-PLUS, takes the client's first message and answers "OK" at once,
    # skipping the final message whose signature only the real server (knowing the password) can make.
    ok_and_ready = b"R\x00\x00\x00\x08" + NO_AUTHENTICATION + b"Z\x00\x00\x00\x05I"
    server = FakeServer(SCRAM_AND_PLUS, then=ok_and_ready)

    with pytest.raises(DatabaseUnavailable):
        connect(server, "sslmode=require&channel_binding=require")
    received = server.finish()

    assert received[:1] == b"p"  # the client's first SCRAM message, which holds no proof
    assert b"SELECT 1" not in received and b"Q\x00" not in received  # no statement ever reached the impostor
