"""Small helpers shared by the integration and browser tests."""

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict


class ApiClient:
    """JSON in, JSON out, over chalice.test's in-process HTTP client."""

    def __init__(self, http):
        self._http = http

    def request(self, method, path, body=None, headers=None, raw=None):
        payload = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self._http.request(method, path, headers={"content-type": "application/json", **(headers or {})},
                                      body=payload)
        return Reply(response.status_code, json.loads(response.body) if response.body else {}, response.headers)

    def create(self, body=None, headers=None, **overrides):
        return self.request("POST", "/api/upload", body or upload_body(**overrides), headers)

    def confirm(self, upload_id, token):
        headers = {} if token is None else {"x-session-token": token}
        return self.request("POST", f"/api/upload/{upload_id}/confirm", headers=headers)

    def status(self, upload_id, token):
        headers = {} if token is None else {"x-session-token": token}
        return self.request("GET", f"/api/upload/{upload_id}", headers=headers)

    def cancel(self, upload_id, token):
        headers = {} if token is None else {"x-session-token": token}
        return self.request("DELETE", f"/api/upload/{upload_id}", headers=headers)


def stored_key(key):
    """What `uploads.idempotency_key` holds for a key sent to the test stack (whose secret the test session set)."""
    from chalicelib.domain import idempotency_key_digest

    return idempotency_key_digest(os.environ["DIGEST_SECRET"], key)


def upload_body(email="maya@example.com", file_type="image/png", file_size=68):
    return {"email": email, "fileType": file_type, "fileSize": file_size}


def http(method, url, data=None, headers=None, timeout=10):
    """A plain HTTP request with the standard library; returns (status, body bytes)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def put_object(upload_url, data, content_type):
    """PUT bytes to a presigned URL as the browser does."""
    return http("PUT", upload_url, data=data, headers={"Content-Type": content_type})


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never answers: a dependency that hangs."""

    def __init__(self):
        import socket
        import threading

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._held = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                self._held.append(self._sock.accept()[0])
            except OSError:
                return

    def close(self):
        self._sock.close()
        for conn in self._held:
            conn.close()


def self_signed_certificate(hostname: str) -> tuple[bytes, bytes]:
    """(certificate, key) in PEM: a self-signed CA certificate for `hostname`, valid for a day."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def require_system_tool(found: bool, what: str, package: str) -> None:
    """A test that needs a system program: in CI (where the suite is the evidence) its absence fails the test;
    elsewhere the test is skipped, and the run's last line says what was skipped and why."""
    if found:
        return
    message = f"no {what} (apt-get install {package}; `make test` installs it when run as root)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}: CI must run these tests")
    pytest.skip(message)
