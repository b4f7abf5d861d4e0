"""The database layer against a real PostgreSQL behind a proxy that breaks things: a statement is never run twice,
a lost answer is a 503 and the client's retry gets the right answer, events are reported exactly once.

Executions are counted on the server by a trigger; messages sent, by the proxy.
"""

import time
import uuid
from dataclasses import replace

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.config import DatabaseSettings
from chalicelib.db import Connection, Database
from chalicelib.deps import Dependencies
from chalicelib.errors import DatabaseUnavailable
from devstack.capture import CaptureServer
from tests.fault_proxy import FaultProxy
from tests.helpers import ApiClient, put_object, stored_key, upload_body
from tests.images import SMALL_PNG
from tests.stack_fixtures import pooler_for

TIMEOUT = 1.0
UNAVAILABLE = {"error": {"code": "SERVICE_UNAVAILABLE",
                         "message": "The service is temporarily unavailable. Please try again in a moment."}}
CONFIRM = b"SET confirmed_at"
INSERT = b"INSERT INTO uploads"
CANCEL = b"SET status = (E'cancelled')"


@pytest.fixture(scope="module")
def executions(db):
    """Count committed inserts and confirmations of `uploads` rows, per upload and email, on the server."""
    db.run("CREATE TABLE upload_writes (upload_id text, email text, op text)")
    db.run("CREATE FUNCTION count_upload_writes() RETURNS trigger LANGUAGE plpgsql AS $$"
           " BEGIN INSERT INTO upload_writes VALUES (NEW.id, NEW.email, TG_OP); RETURN NEW; END $$")
    db.run("CREATE TRIGGER count_upload_writes AFTER INSERT OR UPDATE OF confirmed_at ON uploads"
           " FOR EACH ROW EXECUTE FUNCTION count_upload_writes()")

    def count(op, *, upload_id=None, email=None):
        if upload_id is not None:
            return db.run("SELECT count(*) FROM upload_writes WHERE op = :op AND upload_id = :id",
                          op=op, id=upload_id)[0][0]
        return db.run("SELECT count(*) FROM upload_writes WHERE op = :op AND email = :email",
                      op=op, email=email)[0][0]

    yield count
    db.run("DROP TRIGGER count_upload_writes ON uploads")
    db.run("DROP FUNCTION count_upload_writes()")
    db.run("DROP TABLE upload_writes")


@pytest.fixture(scope="module")
def pooler(local_stack):
    with pooler_for(local_stack, pool_size=1) as bouncer:
        yield bouncer


@pytest.fixture
def proxy(local_stack):
    faults = FaultProxy(local_stack.postgres.port)
    yield faults
    faults.close()


@pytest.fixture
def capture():
    server = CaptureServer().start()
    yield server
    server.stop()


@pytest.fixture
def proxied(monkeypatch, live_deps, local_stack, proxy, capture):
    """The app with its database reached through the proxy, a 1 s database timeout and analytics captured."""
    url = live_deps.settings.database_url.replace(f":{local_stack.postgres.port}/", f":{proxy.port}/")
    settings = replace(live_deps.settings, database_url=url, db_timeout_seconds=TIMEOUT, posthog_api_key="phc_test",
                       posthog_host=capture.url, analytics_budget_seconds=1.0)
    deps = Dependencies(settings)
    deps.__dict__["storage"] = live_deps.storage
    monkeypatch.setattr(app_module, "deps", deps)
    yield ApiClient(Client(app_module.app).http)
    deps.database.close()


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def events(capture, name, upload_id):
    return [e for e in capture.events() if e["event"] == name and e["distinct_id"] == upload_id]


def uploaded(api, email=None):
    body = api.create(upload_body(email=email or "maya@example.com", file_size=len(SMALL_PNG))).body
    assert put_object(body["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    return body


@pytest.mark.parametrize("fault", ["hold", "cut"])
def test_a_confirm_whose_answer_is_lost_is_503_runs_once_and_its_retry_gets_200_and_one_report(
        proxied, proxy, executions, capture, fault):
    body = uploaded(proxied)  # also warms the pooled connection the confirm will use
    proxy.arm(CONFIRM, fault)

    lost, seconds = timed(lambda: proxied.confirm(body["uploadId"], body["sessionToken"]))
    retried = proxied.confirm(body["uploadId"], body["sessionToken"])
    repeated = proxied.confirm(body["uploadId"], body["sessionToken"])

    print(f"\nconfirm, answer {fault}: {lost.status} in {seconds * 1000:.0f} ms; UPDATE sent "
          f"{proxy.sent(CONFIRM)}x, committed {executions('UPDATE', upload_id=body['uploadId'])}x")
    assert (lost.status, lost.body) == (503, UNAVAILABLE)
    assert seconds < TIMEOUT + 1
    assert proxy.sent(CONFIRM) == 1 and executions("UPDATE", upload_id=body["uploadId"]) == 1
    assert (retried.status, retried.body) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    assert repeated.body["error"]["code"] == "UPLOAD_ALREADY_CONFIRMED"
    assert len(events(capture, "upload_confirmed", body["uploadId"])) == 1
    assert len(events(capture, "upload_completed", body["uploadId"])) == 1


@pytest.mark.parametrize("fault", ["hold", "cut"])
def test_a_cancel_whose_answer_is_lost_is_503_runs_once_and_its_retry_gets_204_deletes_and_reports_once(
        proxied, proxy, capture, db, live_deps, fault):
    body = uploaded(proxied)
    proxy.arm(CANCEL, fault)

    lost = proxied.cancel(body["uploadId"], body["sessionToken"])
    sent_by_the_lost_attempt = proxy.sent(CANCEL)
    stored_after_the_lost_answer = live_deps.storage.peek(body["key"], 8)
    retried = proxied.cancel(body["uploadId"], body["sessionToken"])
    repeated = proxied.cancel(body["uploadId"], body["sessionToken"])

    assert (lost.status, lost.body) == (503, UNAVAILABLE)
    assert sent_by_the_lost_attempt == 1  # never resent: it may have committed
    assert stored_after_the_lost_answer is not None  # the lost attempt never got as far as the delete
    assert (retried.status, repeated.status) == (204, 204)
    assert db.run("SELECT status, report_owed FROM uploads WHERE id = :id", id=body["uploadId"]) == [
        ["cancelled", None]]
    assert live_deps.storage.peek(body["key"], 8) is None
    assert len(events(capture, "upload_cancelled", body["uploadId"])) == 1


def test_a_keyed_create_whose_answer_is_held_is_503_runs_once_and_its_retry_gets_201_and_one_report(
        proxied, proxy, executions, capture, db):
    proxied.request("GET", "/api/health")  # warm the pool
    key = {"idempotency-key": f"held-{uuid.uuid4()}"}
    proxy.arm(INSERT, "hold")

    lost, seconds = timed(lambda: proxied.create(headers=key))
    retried = proxied.create(headers=key)
    replayed = proxied.create(headers=key)

    upload_id = retried.body["uploadId"]
    print(f"\nkeyed create, answer held: {lost.status} in {seconds * 1000:.0f} ms; INSERT committed "
          f"{executions('INSERT', upload_id=upload_id)}x")
    assert (lost.status, lost.body) == (503, UNAVAILABLE)
    assert seconds < TIMEOUT + 1
    assert db.run("SELECT count(*) FROM uploads WHERE idempotency_key = :k", k=stored_key(key["idempotency-key"])) == [[1]]
    assert executions("INSERT", upload_id=upload_id) == 1
    assert (retried.status, replayed.status) == (201, 200) and replayed.body["uploadId"] == upload_id
    assert len(events(capture, "session_created", upload_id)) == 1


def test_an_unkeyed_create_whose_answer_is_held_is_503_and_leaves_only_the_retrys_job(
        proxied, proxy, executions, capture, db):
    email = f"held-{uuid.uuid4().hex[:12]}@example.com"
    proxied.request("GET", "/api/health")
    proxy.arm(INSERT, "hold")

    lost, seconds = timed(lambda: proxied.create(upload_body(email=email)))
    retried = proxied.create(upload_body(email=email))

    print(f"\nunkeyed create, answer held: {lost.status} in {seconds * 1000:.0f} ms; INSERTs committed "
          f"{executions('INSERT', email=email)} (held + retry)")
    assert (lost.status, lost.body) == (503, UNAVAILABLE)
    assert seconds < TIMEOUT + 1
    assert executions("INSERT", email=email) == 2
    assert db.run("SELECT id FROM uploads WHERE email = :email", email=email) == [[retried.body["uploadId"]]]
    assert retried.status == 201
    assert len(events(capture, "session_created", retried.body["uploadId"])) == 1
    assert [e["event"] for e in capture.events()].count("session_created") == 1


def test_connections_cut_while_idle_are_replaced_transparently_and_the_statement_runs_once(
        proxied, proxy, executions):
    email = f"idle-{uuid.uuid4().hex[:12]}@example.com"
    assert proxied.request("GET", "/api/health").status == 200
    proxy.cut_idle()
    time.sleep(0.1)

    reply = proxied.create(upload_body(email=email))

    assert reply.status == 201, reply.body
    assert executions("INSERT", email=email) == 1


def test_the_server_cancels_a_statement_before_the_client_gives_up(local_stack):
    database = Database(DatabaseSettings.from_url(local_stack.env["DATABASE_URL"]), timeout=TIMEOUT)
    try:
        started = time.perf_counter()
        with pytest.raises(DatabaseUnavailable) as cancelled:
            database.run("SELECT pg_sleep(:seconds)", seconds=3)
        seconds = time.perf_counter() - started
        assert database.run("SELECT 1") == [[1]]
    finally:
        database.close()

    print(f"\nstatement_timeout {TIMEOUT * 0.8:.1f} s: cancelled by the server after {seconds * 1000:.0f} ms")
    # 503 to the caller, for a statement that the server rolled back (57014, query_canceled)
    assert type(cancelled.value) is DatabaseUnavailable and cancelled.value.__cause__.args[0]["C"] == "57014"


def test_the_server_side_timeout_holds_through_a_transaction_mode_pooler_and_does_not_leak(pooler):
    pooled = Database(DatabaseSettings.from_url(pooler.url()), timeout=TIMEOUT, max_open=1)
    plain = Database(DatabaseSettings.from_url(pooler.url()), statement_timeout=None, max_open=1)
    try:
        with pytest.raises(DatabaseUnavailable) as cancelled:
            pooled.run("SELECT pg_sleep(:seconds)", seconds=3)
        others_see = {plain.run("SHOW statement_timeout")[0][0] for _ in range(6)}
    finally:
        pooled.close()
        plain.close()

    # 503 to the caller, for a statement that the server rolled back (57014, query_canceled)
    assert type(cancelled.value) is DatabaseUnavailable and cancelled.value.__cause__.args[0]["C"] == "57014"
    assert others_see == {"0"}


def test_unexpected_driver_errors_more_times_than_there_are_slots_leave_the_real_pool_whole(local_stack,
                                                                                          monkeypatch):
    database = Database(DatabaseSettings.from_url(local_stack.env["DATABASE_URL"]), max_open=2, timeout=TIMEOUT)

    def broken(self, data, context):
        raise KeyError("a driver bug")

    try:
        with monkeypatch.context() as patch:
            patch.setattr(Connection, "handle_DATA_ROW", broken)
            for _ in range(5):
                with pytest.raises(KeyError):
                    database.run("SELECT 1")
        held = [database._acquire()[0] for _ in range(2)]
        for conn in held:
            database._release(conn)
        assert database.run("SELECT :n", n=2) == [[2]]
    finally:
        database.close()


def test_a_database_that_is_down_is_503_not_a_stack_trace(monkeypatch, live_deps):
    settings = replace(live_deps.settings, database_url="postgresql://u@127.0.0.1:9/db?sslmode=disable",
                       db_timeout_seconds=TIMEOUT)
    monkeypatch.setattr(app_module, "deps", Dependencies(settings))

    reply = ApiClient(Client(app_module.app).http).create()

    assert (reply.status, reply.body) == (503, UNAVAILABLE)
    with pytest.raises(DatabaseUnavailable):
        Database(DatabaseSettings.from_url(settings.database_url), timeout=TIMEOUT).run("SELECT 1")
