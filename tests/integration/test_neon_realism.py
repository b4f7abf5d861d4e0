"""What Neon adds to a plain PostgreSQL: TLS with SCRAM passwords, and a transaction-mode pooler in front."""

import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chalicelib import services
from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from chalicelib.errors import AlreadyConfirmed, DatabaseUnavailable
from chalicelib.migrate import apply_migrations, available_migrations
from chalicelib.repository import Uploads
from devstack.pgbouncer import PgBouncer
from devstack.postgres import PostgresCluster
from devstack.processes import free_port
from tests.helpers import put_object, self_signed_certificate, stored_key, upload_body
from tests.images import SMALL_PNG

PASSWORD = "scram-only-p4ss"


@pytest.fixture(scope="module")
def server_dir():
    """A directory the unprivileged server user can reach (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="3d-ultra-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_cluster(server_dir):
    """A cluster that accepts only TLS connections with SCRAM-SHA-256 passwords, certificate for `localhost`."""
    base = server_dir / "tls"
    cluster = PostgresCluster(
        base / "pg", free_port(), password=PASSWORD,
        extra_conf="ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                   "password_encryption = 'scram-sha-256'",
        hba="local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n"
            "hostssl all all ::1/128 scram-sha-256\nhostnossl all all 0.0.0.0/0 reject\n",
    )
    cluster.init()
    cert, key = self_signed_certificate("localhost")
    cluster.write_file("server.crt", cert)
    cluster.write_file("server.key", key)
    root = base / "root.crt"
    root.write_bytes(cert)
    cluster.start()
    cluster.root_cert = root
    yield cluster
    cluster.stop()


def database(url):
    return Database(DatabaseSettings.from_url(url), timeout=5)


@pytest.mark.parametrize("host, query", [
    ("127.0.0.1", "sslmode=require&channel_binding=require"),
    ("localhost", "sslmode=verify-full&sslrootcert={root}&channel_binding=require"),
])
def test_channel_binding_require_completes_scram_plus_with_the_real_server_and_connects_encrypted(
        tls_cluster, host, query):
    db = database(tls_cluster.url(host=host, query=query.format(root=tls_cluster.root_cert)))

    encrypted = db.run("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    scram = db.run("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'")
    (conn,) = db._idle
    # The exchange was SCRAM-SHA-256-PLUS, bound to this TLS channel, and the server's final signature checked out.
    proof = (conn.auth.mechanism_name, conn._bound, conn._server_proved)
    db.close()

    print(f"\nserver side: pg_stat_ssl = {encrypted}")
    assert proof == ("SCRAM-SHA-256-PLUS", True, True)
    assert encrypted[0][0] is True and encrypted[0][1].startswith("TLS")
    assert scram == [[True]]


def test_verify_full_accepts_the_right_host_and_refuses_a_certificate_for_another(tls_cluster):
    query = f"sslmode=verify-full&sslrootcert={tls_cluster.root_cert}"
    right = database(tls_cluster.url(host="localhost", query=query))
    wrong = database(tls_cluster.url(host="127.0.0.1", query=query))

    assert right.run("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == [[True]]
    with pytest.raises(DatabaseUnavailable):
        wrong.run("SELECT 1")
    right.close()


def test_a_wrong_password_is_refused(tls_cluster):
    url = tls_cluster.url(query="sslmode=require").replace(PASSWORD, "not-it")

    with pytest.raises(DatabaseUnavailable):
        database(url).run("SELECT 1")


def test_sslmode_require_never_falls_back_to_plaintext(stack_env):
    plaintext_only = stack_env["DATABASE_URL"].replace("sslmode=disable", "sslmode=require")

    with pytest.raises(DatabaseUnavailable):
        database(plaintext_only).run("SELECT 1")


@pytest.fixture(scope="module")
def pooler(local_stack, server_dir):
    bouncer = PgBouncer(server_dir / "pgbouncer", server_port=local_stack.postgres.port,
                        database="uploads", pool_size=3)
    bouncer.start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def pooled_uploads(pooler):
    db = Database(DatabaseSettings.from_url(pooler.url()), max_open=20, application_name="through-pooler")
    yield Uploads(db)
    db.close()


def test_the_whole_job_lifecycle_works_through_a_transaction_mode_pooler(pooled_uploads, live_deps):
    deps = dict(uploads=pooled_uploads, storage=live_deps.storage, analytics=live_deps.analytics)
    key = "pooled-key-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"
    secret = live_deps.settings.digest_secret
    created = services.create_upload(upload_body(file_size=len(SMALL_PNG)), key, max_upload_bytes=100,
                                     url_ttl_seconds=60, digest_secret=secret, **deps)
    replayed = services.create_upload(upload_body(file_size=len(SMALL_PNG)), key, max_upload_bytes=100,
                                      url_ttl_seconds=60, digest_secret=secret, **deps)
    put_object(replayed.upload_url, SMALL_PNG, "image/png")

    confirmed = services.confirm_upload(created.upload_id, replayed.session_token, **deps)
    status = services.get_upload_status(created.upload_id, replayed.session_token, uploads=pooled_uploads)

    assert replayed.upload_id == created.upload_id and replayed.replayed
    assert confirmed.status == "pending" and status.record.confirmed_at is not None
    with pytest.raises(AlreadyConfirmed):
        services.confirm_upload(created.upload_id, replayed.session_token, **deps)
    assert services.expire_abandoned_uploads(uploads=pooled_uploads, storage=live_deps.storage,
                                             older_than_seconds=10 ** 8, url_ttl_seconds=10 ** 8) == {
        "expired": 0, "objectsDeleted": 0}


def test_migrations_run_through_the_pooler(pooler, db):
    name = f"pooled_migrations_{threading.get_ident()}"
    db.run(f"CREATE DATABASE {name}")
    pooled = Database(DatabaseSettings.from_url(pooler.url(name)))
    try:
        assert apply_migrations(pooled) == [version for version, _ in available_migrations()]
        assert apply_migrations(pooled) == []
    finally:
        pooled.close()
        db.run(f"DROP DATABASE {name} WITH (FORCE)")


def test_fifty_concurrent_confirms_through_the_pooler_give_exactly_one_winner(pooled_uploads, live_deps):
    deps = dict(uploads=pooled_uploads, storage=live_deps.storage, analytics=live_deps.analytics)
    created = services.create_upload(upload_body(file_size=len(SMALL_PNG)), None, max_upload_bytes=100, url_ttl_seconds=60,
                                     digest_secret=live_deps.settings.digest_secret, **deps)
    put_object(created.upload_url, SMALL_PNG, "image/png")

    def confirm(_):
        try:
            return services.confirm_upload(created.upload_id, created.session_token, **deps).status
        except AlreadyConfirmed:
            return "409"

    with ThreadPoolExecutor(max_workers=50) as pool:
        outcomes = list(pool.map(confirm, range(50)))

    assert sorted(outcomes) == ["409"] * 49 + ["pending"]


def test_concurrent_idempotent_creates_through_the_pooler_make_one_job(pooled_uploads, live_deps, db):
    def create(_):
        return services.create_upload(upload_body(), "pooled-concurrent-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", uploads=pooled_uploads,
                                      storage=live_deps.storage, analytics=live_deps.analytics,
                                      max_upload_bytes=100_000, url_ttl_seconds=60,
                                      digest_secret=live_deps.settings.digest_secret).upload_id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(create, range(40)))

    assert len(ids) == 1
    assert db.run("SELECT count(*) FROM uploads WHERE idempotency_key = :k", k=stored_key("pooled-concurrent-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")) == [[1]]
