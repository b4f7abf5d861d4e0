"""Limits on creating jobs, decided by the database in the create's one statement: exact under 50 concurrent
creates, directly and through a transaction-mode pooler, each request a Lambda proxy event with its own
`requestContext.identity.sourceIp` (as API Gateway sends it) handled by the app in its own thread."""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from chalice.local import LocalChalice

import app as app_module
from chalicelib import domain, services
from chalicelib.config import RateLimit
from chalicelib.db import Database
from chalicelib.deps import Dependencies
from tests.stack_fixtures import pooler_for


def create_event(source_ip, email, idempotency_key=None, forwarded_for=None):
    headers = {"content-type": "application/json"}
    if idempotency_key:
        headers["idempotency-key"] = idempotency_key
    if forwarded_for:
        headers["x-forwarded-for"] = forwarded_for
    return {
        "resource": "/api/upload", "path": "/api/upload", "httpMethod": "POST", "headers": headers,
        "multiValueHeaders": {}, "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "isBase64Encoded": False,
        "body": json.dumps({"email": email, "fileType": "image/png", "fileSize": 68}),
        "requestContext": {"resourcePath": "/api/upload", "httpMethod": "POST", "requestId": str(uuid.uuid4()),
                           "identity": {"sourceIp": source_ip}},
    }


class Lambda:
    """The app as Lambda runs it, one event per call; safe to call from many threads at once."""

    def __call__(self, event):
        response = app_module.app(event, None)
        return response["statusCode"], response["headers"], json.loads(response["body"])

    def burst(self, events):
        start = threading.Barrier(len(events))

        def call(event):
            start.wait()
            return self(event)

        with ThreadPoolExecutor(max_workers=len(events)) as pool:
            return list(pool.map(call, events))


@pytest.fixture
def limited(monkeypatch, live_deps):
    """Point the app at the real stack with the given limits, through the given database URL."""
    built = []

    def configure(database_url=None, **limits):
        settings = replace(live_deps.settings, **limits)
        deps = Dependencies(settings)
        url = database_url or settings.database_url
        deps.__dict__.update(storage=live_deps.storage, analytics=live_deps.analytics,
                             database=Database(replace(settings, database_url=url).database, max_open=50))
        built.append(deps)
        monkeypatch.setattr(app_module, "deps", deps)
        # Chalice keeps the current request on the app object; `chalice local` makes it per thread this way.
        monkeypatch.setattr(app_module.app, "__class__", LocalChalice)
        return Lambda()

    yield configure
    for deps in built:
        deps.database.close()


def unique_ip():
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def unique_email():
    return f"rate-{uuid.uuid4().hex[:12]}@example.com"


def assert_exactly_ten_created_and_forty_refused(replies):
    statuses = [status for status, _, _ in replies]
    assert (statuses.count(201), statuses.count(429)) == (10, 40), statuses
    for status, headers, body in replies:
        if status == 429:
            assert body == {"error": {"code": "RATE_LIMITED",
                                      "message": "Too many uploads right now. Please try again in 1 minute."}}
            assert 1 <= int(headers["Retry-After"]) <= 60


def count_jobs(db, emails):
    return db.run("SELECT count(*) FROM uploads WHERE email = ANY(string_to_array(:emails, ','))",
                  emails=",".join(emails))[0][0]


def test_fifty_concurrent_creates_from_one_ip_give_exactly_ten_201_and_forty_429(limited, db):
    call = limited(rate_limit_per_ip=RateLimit(10, 60))
    ip, emails = unique_ip(), [unique_email() for _ in range(50)]

    replies = call.burst([create_event(ip, email) for email in emails])
    other_ip = call(create_event(unique_ip(), unique_email()))

    assert_exactly_ten_created_and_forty_refused(replies)
    assert count_jobs(db, emails) == 10
    assert other_ip[0] == 201


def test_fifty_concurrent_creates_for_one_email_from_one_client_give_exactly_ten_201_and_forty_429(limited, db):
    call = limited(rate_limit_per_email=RateLimit(10, 60))
    ip, (local, domain_part) = unique_ip(), unique_email().split("@")
    # The same address in any letter case is one address.
    spellings = [f"{local}@{domain_part}", f"{local.upper()}@{domain_part}", f"{local}@{domain_part.upper()}"]

    replies = call.burst([create_event(ip, spellings[i % 3]) for i in range(50)])
    other_email = call(create_event(ip, unique_email()))

    assert_exactly_ten_created_and_forty_refused(replies)
    assert db.run("SELECT count(*) FROM uploads WHERE lower(email) = :email",
                  email=f"{local}@{domain_part}")[0][0] == 10
    assert other_email[0] == 201


def test_a_client_that_used_up_an_emails_quota_locks_out_no_other_client_with_that_email(limited, db):
    call = limited(rate_limit_per_email=RateLimit(3, 600))
    victim, attacker, email = unique_ip(), unique_ip(), unique_email()

    attacks = [call(create_event(attacker, email))[0] for _ in range(4)]
    victims = [call(create_event(victim, email.upper()))[0] for _ in range(4)]

    assert attacks == [201, 201, 201, 429]
    assert victims == [201, 201, 201, 429]
    assert db.run("SELECT count(*) FROM uploads WHERE lower(email) = :email", email=email) == [[6]]


@pytest.fixture(scope="module")
def pooler(local_stack):
    with pooler_for(local_stack, pool_size=3) as bouncer:
        yield bouncer


def test_the_limits_are_just_as_exact_through_a_transaction_mode_pooler(limited, pooler, db):
    call = limited(database_url=pooler.url(), rate_limit_per_ip=RateLimit(10, 60),
                   rate_limit_per_email=RateLimit(10, 60))
    ip, email = unique_ip(), unique_email()

    by_ip = call.burst([create_event(ip, unique_email()) for _ in range(50)])
    client = unique_ip()
    by_email = call.burst([create_event(client, email) for _ in range(50)])
    other = call(create_event(unique_ip(), unique_email()))

    assert_exactly_ten_created_and_forty_refused(by_ip)
    assert_exactly_ten_created_and_forty_refused(by_email)
    assert other[0] == 201


def test_the_client_ip_is_the_gateways_and_a_forwarded_header_changes_nothing(limited):
    call = limited(rate_limit_per_ip=RateLimit(2, 60))
    ip = unique_ip()

    statuses = [call(create_event(ip, unique_email(), forwarded_for=unique_ip()))[0] for _ in range(3)]

    assert statuses == [201, 201, 429]


def test_a_replayed_create_does_not_count_against_limits(limited):
    call = limited(rate_limit_per_ip=RateLimit(2, 60), rate_limit_per_email=RateLimit(2, 60))
    ip, email = unique_ip(), unique_email()

    first = call(create_event(ip, email, idempotency_key=f"attempt-{ip}-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"))
    replays = [call(create_event(ip, email, idempotency_key=f"attempt-{ip}-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"))[0] for _ in range(5)]
    second = call(create_event(ip, email))
    third = call(create_event(ip, email))

    assert (first[0], replays, second[0], third[0]) == (201, [200] * 5, 201, 429)
    assert second[2]["uploadId"] != first[2]["uploadId"]


def test_a_slot_frees_when_the_oldest_counted_create_leaves_the_window(limited, db, live_deps):
    call = limited(rate_limit_per_ip=RateLimit(3, 600))
    ip = unique_ip()
    statuses = [call(create_event(ip, unique_email()))[0] for _ in range(4)]
    refused = call(create_event(ip, unique_email()))
    key = domain.rate_limit_key(live_deps.settings.digest_secret, "ip", ip)
    # Move the oldest counted create 590 s into the past: it leaves the 600 s window in about 10 s.
    db.run("UPDATE rate_limits SET hits[1] = hits[1] - interval '590 seconds' WHERE scope = 'ip' AND key = :key",
           key=key)
    soon = call(create_event(ip, unique_email()))
    db.run("UPDATE rate_limits SET hits[1] = hits[1] - interval '20 seconds' WHERE scope = 'ip' AND key = :key",
           key=key)
    freed = call(create_event(ip, unique_email()))
    full_again = call(create_event(ip, unique_email()))

    assert statuses == [201, 201, 201, 429]
    assert refused[0] == 429 and 595 <= int(refused[1]["Retry-After"]) <= 600
    assert refused[2]["error"]["message"] == "Too many uploads right now. Please try again in 10 minutes."
    assert soon[0] == 429 and 1 <= int(soon[1]["Retry-After"]) <= 10
    assert (freed[0], full_again[0]) == (201, 429)
    # The create that left the window is forgotten: the row keeps only the three still counted.
    assert db.run("SELECT cardinality(hits) FROM rate_limits WHERE scope = 'ip' AND key = :key", key=key) == [[3]]


def test_the_counters_keep_digests_only_and_the_sweep_forgets_stale_ones(limited, db, live_deps):
    call = limited(rate_limit_per_ip=RateLimit(5, 60), rate_limit_per_email=RateLimit(5, 60))
    ip, email = unique_ip(), unique_email()
    call(create_event(ip, email))
    secret = live_deps.settings.digest_secret
    keys = [domain.rate_limit_key(secret, "ip", ip), domain.rate_limit_key(secret, "email", email, ip)]
    stored = db.run("SELECT scope, key FROM rate_limits WHERE key = ANY(string_to_array(:keys, ','))",
                    keys=",".join(keys))
    db.run("UPDATE rate_limits SET updated_at = now() - interval '61 seconds'"
           " WHERE key = ANY(string_to_array(:keys, ','))", keys=",".join(keys))

    services.expire_abandoned_uploads(uploads=live_deps.uploads, storage=live_deps.storage,
                                      older_than_seconds=86400, url_ttl_seconds=900, rate_limit_windows=(60, 60))

    assert sorted(map(tuple, stored)) == sorted([("email", keys[1]), ("ip", keys[0])])
    assert ip not in str(stored) and email not in str(stored)
    assert db.run("SELECT count(*) FROM rate_limits WHERE key = ANY(string_to_array(:keys, ','))",
                  keys=",".join(keys)) == [[0]]


def test_racing_sends_of_one_new_key_queued_behind_the_locked_limit_rows_are_charged_once(limited, db, stack_env):
    import pg8000.native

    from chalicelib.config import DatabaseSettings

    call = limited(rate_limit_per_ip=RateLimit(3, 600), rate_limit_per_email=RateLimit(3, 600))
    ip, email, key = unique_ip(), unique_email(), str(uuid.uuid4())
    assert call(create_event(ip, email))[0] == 201  # both limit rows exist now, one of three used in each
    settings = DatabaseSettings.from_url(stack_env["DATABASE_URL"])
    holder = pg8000.native.Connection(user=settings.user, host=settings.host, port=settings.port,
                                      database=settings.database, password=settings.password)
    try:
        holder.run("BEGIN")
        assert len(holder.run("SELECT 1 FROM rate_limits WHERE updated_at > now() - interval '1 minute'"
                              " FOR UPDATE")) >= 2
        with ThreadPoolExecutor(max_workers=6) as pool:
            sends = [pool.submit(call, create_event(ip, email, idempotency_key=key)) for _ in range(6)]
            # Every send is waiting: one for the limit rows, the others for the key (each statement's snapshot
            # was taken before any of them committed).
            deadline = time.monotonic() + 3
            waiting = 0
            while waiting < 6 and time.monotonic() < deadline:
                waiting = db.run("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                 " AND query LIKE '%upload_key_taken%'")[0][0]
                time.sleep(0.02)
            holder.run("COMMIT")
            replies = [send.result() for send in sends]
    finally:
        holder.close()
    after = [call(create_event(ip, email))[0] for _ in range(2)]

    assert waiting == 6
    assert sorted(status for status, _, _ in replies) == [200] * 5 + [201]
    assert len({body["uploadId"] for _, _, body in replies}) == 1
    # One for the first create, one for the racing sends' job: the third slot is still free.
    assert after == [201, 429]


DEADLOCK_ROUNDS = 120


@pytest.mark.parametrize("through", ["postgres", "pgbouncer"])
def test_racing_sends_of_one_key_with_both_limits_on_never_deadlock(limited, pooler, db, through):
    # A double-click or a retry racing its original: six sends of one key and body at once, round after round.
    # Each round makes one job (one 201, five 200s); a deadlock between them would be a 503.
    call = limited(database_url=pooler.url() if through == "pgbouncer" else None,
                   rate_limit_per_ip=RateLimit(1000, 600), rate_limit_per_email=RateLimit(1000, 600))
    ip, email = unique_ip(), unique_email()
    deadlocks_before = db.run("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0][0]

    rounds = []
    for _ in range(DEADLOCK_ROUNDS):
        key = str(uuid.uuid4())
        replies = call.burst([create_event(ip, email, idempotency_key=key) for _ in range(6)])
        jobs = {body.get("uploadId") for _, _, body in replies}
        rounds.append((sorted(status for status, _, _ in replies), len(jobs)))

    deadlocks = db.run("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")[0][0]
    assert [r for r in rounds if r != ([200] * 5 + [201], 1)] == []
    assert deadlocks - deadlocks_before == 0
    assert count_jobs(db, [email]) == DEADLOCK_ROUNDS
