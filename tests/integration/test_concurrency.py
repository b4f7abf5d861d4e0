"""Races decided by the database, exercised over real HTTP against threaded `chalice local`."""

import json
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import http, put_object, stored_key, upload_body
from tests.images import SMALL_PNG


def post_json(url, body=None, headers=None):
    status, raw = http("POST", url, data=json.dumps(body).encode() if body is not None else b"",
                       headers={"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(raw)


def test_200_concurrent_creates_give_200_distinct_jobs_and_tokens_without_error(live_server, db):
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda i: post_json(f"{live_server}/api/upload", upload_body(email=f"c{i}@example.com")),
                                range(200)))

    assert [status for status, _ in replies] == [201] * 200
    ids = {reply["uploadId"] for _, reply in replies}
    assert len(ids) == 200 and len({reply["sessionToken"] for _, reply in replies}) == 200
    assert db.run("SELECT count(*) FROM uploads WHERE id = ANY(string_to_array(:ids, ','))", ids=",".join(ids)) == [[200]]


def test_fifty_concurrent_confirms_of_one_job_give_exactly_one_200_and_49_409(live_server, db):
    status, body = post_json(f"{live_server}/api/upload", upload_body(file_size=len(SMALL_PNG)))
    put_object(body["uploadUrl"], SMALL_PNG, "image/png")
    confirm_url = f"{live_server}/api/upload/{body['uploadId']}/confirm"

    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda _: post_json(confirm_url, headers={"X-Session-Token": body["sessionToken"]}),
                                range(50)))

    assert sorted(status for status, _ in replies) == [200] + [409] * 49


def test_twenty_concurrent_confirms_give_exactly_one_200(live_server, db):
    status, body = post_json(f"{live_server}/api/upload", upload_body(file_size=len(SMALL_PNG)))
    assert status == 201
    assert put_object(body["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    confirm_url = f"{live_server}/api/upload/{body['uploadId']}/confirm"

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: post_json(confirm_url, headers={"X-Session-Token": body["sessionToken"]}),
                                range(20)))

    statuses = sorted(status for status, _ in replies)
    assert statuses == [200] + [409] * 19
    assert all(reply["error"]["code"] == "UPLOAD_ALREADY_CONFIRMED" for status, reply in replies if status == 409)
    assert db.run("SELECT count(*) FROM uploads WHERE id = :id AND confirmed_at IS NOT NULL",
                  id=body["uploadId"]) == [[1]]


def test_concurrent_creates_with_one_idempotency_key_make_exactly_one_job(live_server, db):
    headers = {"Idempotency-Key": "concurrent-attempt-1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}

    with ThreadPoolExecutor(max_workers=10) as pool:
        replies = list(pool.map(lambda _: post_json(f"{live_server}/api/upload", upload_body(), headers), range(10)))

    assert sorted(status for status, _ in replies) == [200] * 9 + [201]
    assert len({reply["uploadId"] for _, reply in replies}) == 1
    assert db.run("SELECT count(*) FROM uploads WHERE idempotency_key = :k",
                  k=stored_key(headers["Idempotency-Key"])) == [[1]]
