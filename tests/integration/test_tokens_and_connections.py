"""Token uniqueness at volume, and connections that go stale under a warm container."""

from chalicelib import services
from tests.helpers import upload_body


def test_tokens_and_ids_are_unique_over_10000_creates(live_deps, db):
    before = db.run("SELECT count(*) FROM uploads")[0][0]
    created = [
        services.create_upload(
            upload_body(email=f"user{i}@example.com"),
            None,
            uploads=live_deps.uploads,
            storage=live_deps.storage,
            analytics=live_deps.analytics,
            max_upload_bytes=live_deps.settings.max_upload_bytes,
            url_ttl_seconds=60,
            digest_secret=live_deps.settings.digest_secret,
        )
        for i in range(10_000)
    ]

    assert len({c.session_token for c in created}) == 10_000
    assert len({c.upload_id for c in created}) == 10_000
    assert db.run("SELECT count(*) FROM uploads")[0][0] == before + 10_000


def test_a_stale_database_connection_is_replaced_transparently(api, db, live_deps):
    # Several idle connections in the pool, as after a burst of concurrent requests.
    held = [live_deps.database._acquire()[0] for _ in range(3)]
    for conn in held:
        live_deps.database._release(conn)
    assert api.create().status == 201
    # Kill the API's idle connections, as Neon does when it suspends: the pooled one goes stale.
    killed = db.run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = '3d-ultra-upload' AND pid <> pg_backend_pid()")
    assert killed and all(row == [True] for row in killed)

    reply = api.create()

    assert reply.status == 201, reply.body
