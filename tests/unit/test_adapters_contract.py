"""The small classes in front of the outside systems, and the service's plumbing, against recording fakes."""

import json
import logging
import sys
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from chalicelib import analytics as analytics_module
from chalicelib import logs, pages
from chalicelib.analytics import Analytics, build_analytics
from chalicelib.config import DatabaseSettings, Settings
from chalicelib.db import Database, ssl_context_for
from chalicelib.deps import Dependencies, RotatingS3Client
from chalicelib.errors import DatabaseOutcomeUnknown, DatabaseUnavailable, StorageUnavailable
from chalicelib.storage import ObjectInfo, Storage, s3_client
from tests.unit.logcapture import records

ENV = {
    "DATABASE_URL": "postgresql://app@127.0.0.1:9/app?sslmode=disable",
    "R2_ENDPOINT_URL": "http://127.0.0.1:9",
    "R2_ACCESS_KEY_ID": "key-id",
    "R2_SECRET_ACCESS_KEY": "secret-key",
    "DIGEST_SECRET": "test digest secret, at least 32 characters",
    "R2_BUCKET": "photos",
    "ALLOWED_ORIGIN": "http://127.0.0.1:8000",
}


def messages(caplog, logger_name):
    return [(r.levelname, r.getMessage()) for r in records(caplog, logger_name)]


# Analytics

def test_a_posthog_client_is_built_for_the_budget_without_retries_geoip_or_its_own_error_logs():
    analytics = build_analytics("phc_test", "http://127.0.0.1:9", 0.75)
    try:
        client = analytics._client
        assert isinstance(analytics, Analytics) and analytics._budget == 0.75
        assert (client.api_key, client.host, client.timeout, client.max_retries, client.disable_geoip) == (
            "phc_test", "http://127.0.0.1:9", 0.75, 0, True)
        assert client.on_error is analytics_module._delivery_failed
        assert logging.getLogger("posthog").level == logging.CRITICAL
    finally:
        analytics._client.shutdown()


def test_a_failed_delivery_is_one_warning_with_the_reason_and_the_count_but_no_event(service_logs):
    analytics_module._delivery_failed(TimeoutError("slow"), [{"event": "a"}, {"event": "b"}])

    assert messages(service_logs, "chalicelib.analytics") == [
        ("WARNING", "analytics: delivery failed (TimeoutError); 2 event(s) dropped")]


# Dependencies

def recorder(calls, name):
    def build(*args, **kwargs):
        calls.append((name, args, kwargs))
        return SimpleNamespace(name=name)

    return build


def test_dependencies_are_built_on_first_use_from_the_settings_and_kept(service_logs, monkeypatch):
    import chalicelib.db
    import chalicelib.repository
    import chalicelib.storage

    calls = []

    class RecordingDatabase:  # a class: the rotating database subclasses it
        def __init__(self, *args, **kwargs):
            calls.append(("database", args, kwargs))

    monkeypatch.setattr(chalicelib.db, "Database", RecordingDatabase)
    monkeypatch.setattr(chalicelib.repository, "Uploads", recorder(calls, "uploads"))
    monkeypatch.setattr(chalicelib.storage, "s3_client", recorder(calls, "s3"))
    monkeypatch.setattr(chalicelib.storage, "Storage", recorder(calls, "storage"))
    settings = Settings.from_env({**ENV, "DB_TIMEOUT_SECONDS": "2.5", "STORAGE_TIMEOUT_SECONDS": "1.5"})
    deps = Dependencies(settings)

    assert deps.settings is settings
    assert (deps.built("analytics"), deps.built("storage"), deps.built("uploads")) == (None, None, None)
    uploads, storage = deps.uploads, deps.storage
    assert deps.uploads is uploads and deps.storage is storage and deps.built("uploads") is uploads
    database = deps.database
    assert isinstance(database, RecordingDatabase) and deps.database is database
    rotating_s3 = calls[-1][1][0]
    assert isinstance(rotating_s3, RotatingS3Client)
    assert calls == [
        ("database", (settings.database,), {"timeout": 2.5}),
        ("uploads", (database,), {}),
        ("storage", (rotating_s3, "photos"), {}),
    ]
    # The S3 client itself is built on the first storage call, with the current keys, and kept while they hold.
    assert rotating_s3.current() is rotating_s3.current()
    assert calls[3:] == [("s3", (), {"endpoint_url": "http://127.0.0.1:9", "access_key_id": "key-id",
                                     "secret_access_key": "secret-key", "timeout": 1.5})]
    assert deps.analytics is deps.analytics and deps.built("analytics") is deps.analytics
    assert messages(service_logs, "chalicelib.deps") == [("INFO", "analytics: off (POSTHOG_API_KEY is not set)")]


@pytest.mark.parametrize("extra", [{"POSTHOG_API_KEY": "phc_x"}, {"POSTHOG_API_KEY_SSM_PARAMETER": "/p/posthog"}])
def test_analytics_being_off_is_not_logged_when_a_key_is_given_directly_or_through_ssm(service_logs, extra):
    Dependencies(Settings.from_env({**ENV, **extra}))

    assert messages(service_logs, "chalicelib.deps") == []


def test_analytics_is_reported_off_when_only_other_secrets_come_from_ssm(service_logs):
    env = {k: v for k, v in ENV.items() if k != "R2_SECRET_ACCESS_KEY"}
    Dependencies(Settings.from_env({**env, "R2_SECRET_ACCESS_KEY_SSM_PARAMETER": "/p/secret"}))

    assert messages(service_logs, "chalicelib.deps") == [("INFO", "analytics: off (POSTHOG_API_KEY is not set)")]


def test_secrets_are_fetched_from_ssm_once(monkeypatch):
    import chalicelib.config as config

    env = {k: v for k, v in ENV.items() if k != "R2_SECRET_ACCESS_KEY"}
    fetched = []
    monkeypatch.setattr(config, "fetch_ssm_parameters",
                        lambda names: fetched.append(names) or {"/p/secret": "from-ssm"})
    deps = Dependencies(Settings.from_env({**env, "R2_SECRET_ACCESS_KEY_SSM_PARAMETER": "/p/secret"}))

    assert deps.secrets.r2_secret_access_key == "from-ssm" and deps.secrets is deps.secrets
    assert fetched == [["/p/secret"]]


# Logs

def format_record(**extra):
    record = logging.LogRecord("chalicelib.http", logging.INFO, __file__, 1, "request %s", ("x",), None)
    record.__dict__.update(extra)
    return json.loads(logs.JsonFormatter().format(record))


def test_a_log_line_is_one_json_object_with_level_logger_message_and_the_extras():
    line = format_record(uploadId="ck1", status=201, when=SimpleNamespace())

    assert {k: v for k, v in line.items() if k != "when"} == {
        "level": "INFO", "logger": "chalicelib.http", "message": "request x", "uploadId": "ck1", "status": 201}
    assert line["when"].startswith("namespace(")  # anything else is written as its str()


def test_an_exception_is_logged_with_its_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("chalicelib.db", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())

    line = json.loads(logs.JsonFormatter().format(record))

    assert (line["level"], line["message"]) == ("ERROR", "failed")
    assert line["exception"].startswith("Traceback") and line["exception"].endswith("ValueError: boom")


def test_logging_is_configured_once_as_json_on_stderr_without_propagation(monkeypatch):
    logger = logging.getLogger("chalicelib")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logger, "level", logging.NOTSET)

    logs.configure_logging(logging.WARNING)
    logs.configure_logging()

    (handler,) = logger.handlers
    assert isinstance(handler.formatter, logs.JsonFormatter) and handler.stream is sys.stderr
    assert (logger.level, logger.propagate) == (logging.WARNING, False)


# Pages

def test_a_page_carries_the_size_limit_and_a_csp_naming_only_this_api_and_the_storage_origin():
    response = pages.page("index.html", max_upload_bytes=1234567,
                          storage_endpoint="https://acc.r2.cloudflarestorage.com/some/path")

    assert response.status_code == 200
    assert 'data-max-bytes="1234567"' in response.body and "{{MAX_UPLOAD_BYTES}}" not in response.body
    assert response.headers == {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
                                   f"style-src 'self' {' '.join(pages.viewer_style_hashes())}; "
                                   "connect-src 'self' https://acc.r2.cloudflarestorage.com blob:; "
                                   "img-src 'self' data: blob: https://acc.r2.cloudflarestorage.com; "
                                   "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }


def test_the_openapi_document_is_served_as_json():
    response = pages.openapi()

    assert (response.status_code, response.headers) == (200, {"Content-Type": "application/json"})
    assert json.loads(response.body)["openapi"].startswith("3.1")


@pytest.mark.parametrize("name, content_type", [("api.js", "text/javascript; charset=utf-8"),
                                                ("styles.css", "text/css; charset=utf-8")])
def test_scripts_and_styles_are_served_with_their_type_and_no_caching(name, content_type):
    response = pages.asset(name)

    assert response.status_code == 200 and response.body == (pages.WEB_DIR / name).read_text()
    assert response.headers == {"Content-Type": content_type, "Cache-Control": "no-cache",
                                "X-Content-Type-Options": "nosniff"}


@pytest.mark.parametrize("name", ["index.html", "../openapi.json", "nope.js", "api.js/..", ""])
def test_any_other_name_is_a_plain_404(name):
    response = pages.asset(name)

    assert (response.status_code, response.body, response.headers) == (404, "Not found",
                                                                         {"Content-Type": "text/plain"})


def test_the_served_assets_are_exactly_the_scripts_and_styles():
    assert pages.ASSETS == {p.name for p in pages.WEB_DIR.iterdir() if p.suffix in (".js", ".css")}
    assert "index.html" not in pages.ASSETS


# Storage

def test_the_s3_client_is_set_up_for_r2():
    client = s3_client(endpoint_url="http://127.0.0.1:9", access_key_id="AK", secret_access_key="SK", timeout=1.5)
    config = client.meta.config
    credentials = client._request_signer._credentials

    assert (client.meta.endpoint_url, client.meta.region_name) == ("http://127.0.0.1:9", "auto")
    assert (credentials.access_key, credentials.secret_key) == ("AK", "SK")
    assert (config.signature_version, config.s3, config.connect_timeout, config.read_timeout) == (
        "s3v4", {"addressing_style": "path"}, 1.5, 1.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert (config.request_checksum_calculation, config.response_checksum_validation) == (
        "when_required", "when_required")


def client_error(code, operation="GetObject", status=None):
    response = {"Error": {"Code": code, "Message": "m"}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(response, operation)


class Body:
    """A streaming body that records how much was asked of it and whether it was closed."""

    def __init__(self, data, fail=None):
        self.data, self.fail, self.reads, self.closed = data, fail, [], False

    def read(self, amount=None):
        self.reads.append(amount)
        if self.fail:
            raise self.fail
        return self.data if amount is None else self.data[:amount]

    def close(self):
        self.closed = True


class RecordingS3:
    def __init__(self, answer=None, fail=None):
        self.calls, self.answer, self.fail = [], answer, fail

    def _call(self, name, kwargs):
        self.calls.append((name, kwargs))
        if self.fail:
            raise self.fail
        return self.answer

    def get_object(self, **kwargs):
        return self._call("get_object", kwargs)

    def delete_object(self, **kwargs):
        return self._call("delete_object", kwargs)

    def head_bucket(self, **kwargs):
        return self._call("head_bucket", kwargs)

    def generate_presigned_url(self, operation, Params, ExpiresIn):
        return self._call("generate_presigned_url", {"operation": operation, "Params": Params, "ExpiresIn": ExpiresIn})


def test_peek_asks_for_the_first_bytes_of_the_key_and_reports_the_total_size_type_and_etag():
    body = Body(b"\x89PNG" + b"x" * 59)
    s3 = RecordingS3({"ContentRange": "bytes 0-63/1234", "ContentLength": 64, "ContentType": "image/png",
                      "ETag": '"abc"', "Body": body})

    assert Storage(s3, "photos").peek("uploads/a/original.png", 64) == ObjectInfo(
        1234, "image/png", '"abc"', b"\x89PNG" + b"x" * 59)
    assert s3.calls == [("get_object", {"Bucket": "photos", "Key": "uploads/a/original.png", "Range": "bytes=0-63"})]
    assert (body.reads, body.closed) == ([64], True)


def test_a_server_that_ignores_the_range_gives_the_size_from_its_length_and_only_the_asked_bytes_are_read():
    body = Body(b"0123456789")
    s3 = RecordingS3({"ContentLength": 10, "ContentType": "image/jpeg", "ETag": '"e"', "Body": body})

    assert Storage(s3, "photos").peek("k", 4) == ObjectInfo(10, "image/jpeg", '"e"', b"0123")
    assert s3.calls[0][1]["Range"] == "bytes=0-3" and (body.reads, body.closed) == ([4], True)


@pytest.mark.parametrize("content_range, size", [("bytes 0-63/64", 64), ("bytes 0-0/1", 1), ("bytes 0-63/*", 7),
                                                 ("", 7)])
def test_the_total_size_comes_from_content_range_when_it_names_one(content_range, size):
    s3 = RecordingS3({"ContentRange": content_range, "ContentLength": 7, "Body": Body(b"1234567")})

    assert Storage(s3, "photos").peek("k", 64).size == size


def test_an_object_without_a_type_or_etag_has_empty_ones():
    assert Storage(RecordingS3({"ContentLength": 5, "Body": Body(b"12345")}), "photos").peek("k", 64) == ObjectInfo(
        5, "", "", b"12345")


@pytest.mark.parametrize("error", [client_error("404"), client_error("NoSuchKey"), client_error("NotFound"),
                                   client_error("416"), client_error("InvalidRange"),
                                   client_error("Whatever", status=416)])
def test_each_not_found_or_empty_object_answer_means_no_object(service_logs, error):
    assert Storage(RecordingS3(fail=error), "photos").peek("k", 64) is None
    assert messages(service_logs, "chalicelib.storage") == []


@pytest.mark.parametrize("operation, call, logged", [
    ("get", lambda store: store.peek("k", 64), "storage get failed: ClientError"),
    ("delete", lambda store: store.delete("k"), "storage delete failed: ClientError"),
    ("head_bucket", lambda store: store.ping(), "storage head_bucket failed: ClientError"),
])
def test_other_errors_are_storage_unavailable_and_logged_by_operation(service_logs, operation, call, logged):
    with pytest.raises(StorageUnavailable):
        call(Storage(RecordingS3(fail=client_error("AccessDenied", status=403)), "photos"))

    (record,) = records(service_logs, "chalicelib.storage")
    assert (record.levelname, record.getMessage()) == ("ERROR", logged)
    assert (record.operation, record.s3ErrorCode, record.httpStatus) == (operation, "AccessDenied", 403)


def test_an_unreachable_endpoint_is_storage_unavailable(service_logs):
    store = Storage(RecordingS3(fail=EndpointConnectionError(endpoint_url="http://127.0.0.1:9")), "photos")

    with pytest.raises(StorageUnavailable):
        store.peek("k", 64)
    with pytest.raises(StorageUnavailable):
        store.delete("k")
    assert messages(service_logs, "chalicelib.storage") == [
        ("ERROR", "storage get failed: EndpointConnectionError"),
        ("ERROR", "storage delete failed: EndpointConnectionError")]
    assert [(r.operation, r.s3ErrorCode, r.httpStatus) for r in records(service_logs, "chalicelib.storage")] == [
        ("get", None, None), ("delete", None, None)]


def test_a_body_that_fails_mid_read_is_storage_unavailable_and_still_closed(service_logs):
    body = Body(b"", fail=ReadTimeoutError(endpoint_url="http://127.0.0.1:9"))

    with pytest.raises(StorageUnavailable):
        Storage(RecordingS3({"ContentLength": 5, "Body": body}), "photos").peek("k", 64)

    assert body.closed
    assert messages(service_logs, "chalicelib.storage") == [("ERROR", "storage get failed: ReadTimeoutError")]


def test_delete_and_ping_name_the_bucket_and_key():
    s3 = RecordingS3({})
    store = Storage(s3, "photos")

    store.delete("uploads/a/original.png")
    store.ping()

    assert s3.calls == [("delete_object", {"Bucket": "photos", "Key": "uploads/a/original.png"}),
                        ("head_bucket", {"Bucket": "photos"})]


def test_presigning_passes_the_bucket_key_type_length_and_lifetime():
    s3 = RecordingS3("https://signed")

    assert Storage(s3, "photos").presign_put("k", content_type="image/png", content_length=5,
                                              expires_in=60) == "https://signed"
    assert s3.calls == [("generate_presigned_url", {
        "operation": "put_object",
        "Params": {"Bucket": "photos", "Key": "k", "ContentType": "image/png", "ContentLength": 5},
        "ExpiresIn": 60})]


# Database: only what the pool promises whatever its internals

class RecordingConnection:
    opened = []

    def __init__(self, **kwargs):
        self.kwargs, self.closed, self.statements = kwargs, False, []
        self.parameter_statuses = {"standard_conforming_strings": "on"}
        RecordingConnection.opened.append(self)

    def run_once(self, sql):
        self.statements.append(sql)
        return [[1]]

    def close(self):
        self.closed = True


def sent(sql, timeout=5.0):
    """A statement as it goes out: the server-side timeout (80% of the client's) in the same message."""
    return f"SET LOCAL statement_timeout = {int(timeout * 800)}; {sql}"


@pytest.fixture
def recording():
    RecordingConnection.opened = []
    return RecordingConnection


def test_each_successful_statement_gives_its_slot_back(recording):
    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=recording, max_open=1, timeout=0.05)

    for _ in range(5):
        assert database.run("SELECT 1") == [[1]]

    assert len(recording.opened) == 1 and recording.opened[0].statements == [sent("SELECT 1", 0.05)] * 5


def test_close_closes_every_idle_connection_and_the_next_statement_opens_a_new_one(recording):
    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=recording)
    database.run("SELECT 1")

    database.close()

    assert [conn.closed for conn in recording.opened] == [True]
    database.run("SELECT 2")
    assert len(recording.opened) == 2 and not recording.opened[1].closed


def test_a_statement_without_placeholders_is_sent_as_written_and_values_are_escaped(recording):
    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=recording)

    database.run("SELECT '10:30', x::int FROM t")
    database.run("SELECT :a", a="it's")

    assert recording.opened[0].statements == [sent("SELECT '10:30', x::int FROM t"), sent("SELECT (E'it''s')")]


def test_a_connection_is_opened_with_the_settings_of_the_url(recording):
    settings = DatabaseSettings.from_url("postgresql://app:pw@127.0.0.1:6543/appdb?sslmode=disable")

    Database(settings, connect=recording, timeout=2.5).run("SELECT 1")

    assert recording.opened[0].kwargs == {"user": "app", "password": "pw", "host": "127.0.0.1", "port": 6543,
                                          "database": "appdb", "ssl_context": False, "timeout": 2.5,
                                          "application_name": "3d-ultra-upload", "channel_binding": "prefer"}


def self_signed_authority(path):
    """A CA certificate made in memory (cryptography comes with moto), written where sslrootcert can name it."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_sslrootcert_is_the_trusted_authority_for_verified_tls(tmp_path):
    import ssl

    from chalicelib import db

    # Contexts are kept per setting, and one that verified a server lists the authority it loaded for that: compare
    # fresh ones.
    db._ssl_context.cache_clear()
    cert = self_signed_authority(tmp_path / "ca.pem")

    def authorities(mode, rootcert):
        url = f"postgresql://u@h/d?sslmode={mode}" + (f"&sslrootcert={rootcert}" if rootcert else "")
        context = ssl_context_for(DatabaseSettings.from_url(url))
        assert context.verify_mode == ssl.CERT_REQUIRED
        return [c["subject"] for c in context.get_ca_certs()]

    for mode in ("require", "verify-ca", "verify-full"):
        assert authorities(mode, cert) == [((("commonName", "Test CA"),),)]
    # "system" is libpq's name for the platform's own authorities, the same as giving none, and checks the host.
    assert authorities("verify-full", "system") == authorities("verify-full", None)
    assert ssl_context_for(DatabaseSettings.from_url("postgresql://u@h/d?sslrootcert=system")).check_hostname


def test_the_tls_context_is_built_once_per_tls_setting_and_shared_by_every_connection(tmp_path, recording):
    cert = self_signed_authority(tmp_path / "ca.pem")
    url = f"postgresql://app@127.0.0.1:9/app?sslmode=verify-full&sslrootcert={cert}"
    database = Database(DatabaseSettings.from_url(url), connect=recording, max_idle=0)

    database.run("SELECT 1")
    database.run("SELECT 1")
    rotated = DatabaseSettings.from_url(url.replace("app@", "app:new-password@"))
    other = DatabaseSettings.from_url(url.replace("verify-full", "verify-ca"))

    first, second = (conn.kwargs["ssl_context"] for conn in recording.opened)
    assert first is second is ssl_context_for(rotated)
    assert ssl_context_for(other) is not first and not ssl_context_for(other).check_hostname


def test_a_client_error_without_an_error_code_is_storage_unavailable():
    bare = ClientError({"ResponseMetadata": {"HTTPStatusCode": 500}}, "GetObject")

    with pytest.raises(StorageUnavailable):
        Storage(RecordingS3(fail=bare), "photos").peek("k", 64)


class FailingConnection(RecordingConnection):
    """Fails its next statement with `fail`, then behaves."""

    fail = None

    def run_once(self, sql):
        self.statements.append(sql)
        failure, FailingConnection.fail = FailingConnection.fail, None
        if failure:
            raise failure
        return [[1]]


@pytest.fixture
def failing():
    RecordingConnection.opened = []
    FailingConnection.fail = None
    return FailingConnection


def test_a_fresh_connection_lost_mid_statement_is_503_and_the_statement_is_not_sent_again(failing):
    from pg8000.exceptions import InterfaceError

    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=failing, max_open=1, timeout=0.05)
    failing.fail = InterfaceError("network error")

    with pytest.raises(DatabaseOutcomeUnknown):
        database.run("INSERT 1")

    (conn,) = RecordingConnection.opened
    assert conn.statements == [sent("INSERT 1", 0.05)] and conn.closed
    assert database.run("SELECT 1") == [[1]]  # its slot was given back


@pytest.mark.parametrize("error", [{"C": "08000"}, {"C": "08003"}, {"C": "08006"}, {"C": "57P01"}, {"C": "57P02"},
                                   {"C": "57P03"}, {"V": "FATAL", "C": "XX000"}, {"S": "PANIC", "C": "XX000"},
                                   {"S": "FATAL"}])
def test_server_errors_that_mean_the_connection_is_gone_are_503_drop_it_and_are_not_sent_again(failing, error):
    from pg8000.exceptions import DatabaseError

    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=failing)
    database.run("SELECT 1")
    failing.fail = DatabaseError({**error, "M": "gone"})

    # The statement went out and the connection ended before its answer: it may have run, so never resent.
    with pytest.raises(DatabaseOutcomeUnknown):
        database.run("SELECT 2")

    assert database.run("SELECT 3") == [[1]]
    first, second = RecordingConnection.opened
    assert (first.closed, first.statements, second.statements) == (
        True, [sent("SELECT 1"), sent("SELECT 2")], [sent("SELECT 3")])


@pytest.mark.parametrize("error", [{"C": "23505", "M": "duplicate key"}, {"V": "ERROR", "S": "FATAL", "C": "23505"},
                                   {"M": "no code"}, "plain text", None])
def test_other_database_errors_reach_the_caller_and_keep_the_connection(failing, error):
    from pg8000.exceptions import DatabaseError

    database = Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=failing)
    database.run("SELECT 1")
    failing.fail = DatabaseError(error) if error is not None else DatabaseError()

    with pytest.raises(DatabaseError):
        database.run("INSERT 1")

    (conn,) = RecordingConnection.opened
    assert not conn.closed and database.run("SELECT 2") == [[1]]


def test_a_server_that_does_not_report_standard_conforming_strings_counts_as_off_and_is_refused(recording):
    class Quiet(RecordingConnection):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parameter_statuses = {}

    with pytest.raises(DatabaseUnavailable):
        Database(DatabaseSettings.from_url(ENV["DATABASE_URL"]), connect=Quiet).run("SELECT 1")
    (conn,) = recording.opened
    assert conn.closed and conn.statements == []


def test_the_pages_csp_allows_the_3d_viewer_by_its_style_hash_and_no_eval():
    # The viewer's bundle puts one <style> in its shadow root: exactly that one is allowed, by its SHA-256.
    hashes = pages.viewer_style_hashes()
    assert len(hashes) == 1 and hashes[0].startswith("'sha256-")
    csp = pages.page("processing.html", max_upload_bytes=1, storage_endpoint="https://s.example").headers[
        "Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in csp
    assert directives["style-src"] == f"'self' {hashes[0]}"
