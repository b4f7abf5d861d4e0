"""The email a finished job sends, end to end on the local stack: the worker's handlers fed from the real SQS queue
(moto's server), the reference processing service, real PostgreSQL, and the stack's own SMTP server; then the
emailed view credential on the real routes."""

import re
import time
import uuid
from types import SimpleNamespace

import boto3
import pytest
from chalice.test import Client

import app as app_module
from chalicelib.config import Settings
from chalicelib.deps import Dependencies
from devstack.worker import lambda_event
from tests.helpers import ApiClient, put_object, upload_body
from tests.images import SMALL_PNG

WHY = "You're getting this because you uploaded a photo to 3D Ultra with this address."
MISSING = {"error": {"code": "MISSING_TOKEN", "message": "This request needs the session token of your upload."}}
INVALID = {"error": {"code": "INVALID_TOKEN", "message": "This session token is not valid for this upload."}}


@pytest.fixture
def worker_deps(stack_env, monkeypatch):
    """The app's dependencies as the worker functions have them, of this test alone (a statement count sees only
    its own)."""
    deps = Dependencies(Settings.from_env(stack_env))
    monkeypatch.setattr(app_module, "deps", deps)
    yield deps
    deps.database.close()


@pytest.fixture
def api(worker_deps):
    with Client(app_module.app) as client:
        yield ApiClient(client.http)


@pytest.fixture
def mail(local_stack):
    yield local_stack.mail
    if local_stack.mail._controller is None:
        local_stack.mail.start()  # a test that stopped it leaves it running for the next


class Worker:
    """What Lambda's event source mapping does for the jobs queue, in this process, delivering each message
    `deliveries` times before deleting it (as SQS may, at least once)."""

    def __init__(self, stack_env):
        self.client = boto3.client("sqs")
        self.url = stack_env["JOBS_QUEUE_URL"]
        self.arn = self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        self.bodies = []

    def run_until(self, done, *, deliveries=1, timeout=40.0, lose_emails=False):
        """Feed messages to the handler until `done()`; with `lose_emails`, email messages are deleted unread (a
        lost message)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            messages = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=1, WaitTimeSeconds=1,
                                                   AttributeNames=["ApproximateReceiveCount", "SentTimestamp"]
                                                   ).get("Messages", [])
            for message in messages:
                self.bodies.append(message["Body"])
                lost = lose_emails and '"notify": true' in message["Body"]
                for _ in range(0 if lost else deliveries):
                    app_module.process_job(lambda_event(message, self.arn),
                                           SimpleNamespace(aws_request_id=str(uuid.uuid4())))
                self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError("the condition did not come true in time")


@pytest.fixture
def worker(worker_deps, stack_env):
    return Worker(stack_env)


def confirmed_job(api, email):
    job = api.create(upload_body(email=email, file_size=len(SMALL_PNG))).body
    assert put_object(job["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    assert api.confirm(job["uploadId"], job["sessionToken"]).status == 200
    return job


def email_row(db, upload_id):
    return db.run("SELECT status, email_tries, email_sent_at IS NOT NULL, email_given_up_at IS NOT NULL,"
                  " view_token_hash IS NOT NULL FROM uploads WHERE id = :id", id=upload_id)[0]


def new_address():
    return f"maya.{uuid.uuid4().hex[:10]}@example.com"


def view_token_of(message, job_id):
    text = message.get_body(("plain",)).get_content()
    (token,) = re.findall(rf"/processing/{job_id}#view=([A-Za-z0-9_-]+)", text)
    return token


def completed_with_email(api, worker, mail, db, *, deliveries=1):
    address = new_address()
    job = confirmed_job(api, address)
    worker.run_until(lambda: mail.received(address), deliveries=deliveries)
    return job, address


def test_a_job_whose_every_message_is_delivered_three_times_completes_and_sends_exactly_one_email(
        api, worker, mail, db, local_stack):
    job, address = completed_with_email(api, worker, mail, db, deliveries=3)
    time.sleep(2)  # a second email, if any, would have arrived by now

    (message,) = mail.received(address)
    assert email_row(db, job["uploadId"]) == ["completed", 1, True, False, True]
    assert '"notify": true' in "".join(worker.bodies)
    assert (message["From"], message["Subject"]) == ("3D Ultra <no-reply@3d-ultra.example>", "Your 3D model is ready")
    text = message.get_body(("plain",)).get_content()
    token = view_token_of(message, job["uploadId"])
    assert f"{local_stack.frontend_url}/processing/{job['uploadId']}#view={token}" in text
    assert text.rstrip().endswith(WHY)
    html = message.get_body(("html",)).get_content()
    assert "<img" not in html and WHY in html and token != job["sessionToken"]


def test_a_mail_server_outage_leaves_the_job_completed_and_its_email_goes_out_once_it_is_back(
        api, worker, mail, db):
    address = new_address()
    mail.stop()
    job = confirmed_job(api, address)

    worker.run_until(lambda: email_row(db, job["uploadId"])[:2] == ["completed", 1])
    assert api.status(job["uploadId"], job["sessionToken"]).body["status"] == "completed"
    assert email_row(db, job["uploadId"]) == ["completed", 1, False, False, True]

    mail.start()
    worker.run_until(lambda: mail.received(address), timeout=30)
    assert len(mail.received(address)) == 1
    assert email_row(db, job["uploadId"]) == ["completed", 2, True, False, True]


def test_a_job_whose_email_was_cleared_by_retention_sends_none(api, worker, mail, db):
    address = new_address()
    job = confirmed_job(api, address)
    db.run("UPDATE uploads SET email = '' WHERE id = :id", id=job["uploadId"])

    worker.run_until(lambda: email_row(db, job["uploadId"])[0] == "completed")
    time.sleep(1)

    assert mail.received(address) == []
    assert email_row(db, job["uploadId"]) == ["completed", 0, False, False, False]


@pytest.fixture
def statements(worker_deps, monkeypatch):
    sent = []
    run = worker_deps.database.run

    def counted(statement, /, **params):
        sent.append(statement)
        return run(statement, **params)

    monkeypatch.setattr(worker_deps.database, "run", counted)
    return sent


def test_the_emailed_view_credential_opens_the_status_read_only_in_one_round_trip_and_nothing_else(
        api, worker, mail, db, statements):
    job, address = completed_with_email(api, worker, mail, db)
    upload_id = job["uploadId"]
    token = view_token_of(mail.received(address)[0], upload_id)
    by_session = api.status(upload_id, job["sessionToken"])
    statements.clear()

    by_view = api.request("GET", f"/api/upload/{upload_id}", headers={"x-view-token": token})

    assert len(statements) == 1
    assert by_view.status == 200
    links = ("previewUrl", "resultUrl")
    assert {k: v for k, v in by_view.body.items() if k not in links} == {
        k: v for k, v in by_session.body.items() if k not in links}
    assert by_view.body["status"] == "completed" and all(by_view.body[k] for k in links)
    steps = [("POST", f"/api/upload/{upload_id}/confirm"), ("DELETE", f"/api/upload/{upload_id}"),
             ("POST", f"/api/upload/{upload_id}/retry")]
    for method, path in steps:
        as_session = api.request(method, path, headers={"x-session-token": token})
        alone = api.request(method, path, headers={"x-view-token": token})
        assert (as_session.status, as_session.body) == (401, INVALID), path
        assert (alone.status, alone.body) == (401, MISSING), path
    assert api.status(upload_id, job["sessionToken"]).body["status"] == "completed"
    wrong = api.request("GET", f"/api/upload/{upload_id}", headers={"x-view-token": token[:-2] + "xx"})
    assert (wrong.status, wrong.body) == (401, {"error": {"code": "INVALID_TOKEN",
                                                          "message": "This link is not valid for this upload."}})
    stored = db.run("SELECT view_token_hash, view_expires_at - updated_at FROM uploads WHERE id = :id",
                    id=upload_id)[0]
    from chalicelib.domain import hash_token
    assert stored[0] == hash_token(token) and stored[1].days == 30


def test_an_expired_view_credential_is_refused_and_the_session_still_opens_the_job(api, worker, mail, db):
    job, address = completed_with_email(api, worker, mail, db)
    upload_id = job["uploadId"]
    token = view_token_of(mail.received(address)[0], upload_id)
    db.run("UPDATE uploads SET view_expires_at = now() - interval '1 second' WHERE id = :id", id=upload_id)

    expired = api.request("GET", f"/api/upload/{upload_id}", headers={"x-view-token": token})

    assert (expired.status, expired.body) == (410, {"error": {
        "code": "UPLOAD_EXPIRED",
        "message": "This link has expired: the photo and its 3D model were deleted. Please upload your photo again."}})
    assert api.status(upload_id, job["sessionToken"]).status == 200


def test_an_email_whose_message_was_lost_is_offered_again_by_the_dispatcher_and_sent_once(api, worker, mail, db):
    address = new_address()
    job = confirmed_job(api, address)
    worker.run_until(lambda: email_row(db, job["uploadId"])[0] == "completed", lose_emails=True)
    time.sleep(1)
    assert mail.received(address) == [] and email_row(db, job["uploadId"])[1] == 0
    db.run("UPDATE uploads SET email_due_at = now() - interval '10 minutes' WHERE id = :id", id=job["uploadId"])

    summary = app_module.dispatch_jobs({}, SimpleNamespace(aws_request_id="dispatch"))
    worker.run_until(lambda: mail.received(address))

    assert summary["emailsOffered"] >= 1
    assert len(mail.received(address)) == 1 and email_row(db, job["uploadId"])[1:3] == [1, True]
