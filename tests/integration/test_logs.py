"""What the logs of a full flow may never hold: a session token or an email address."""

import logging

from tests.helpers import put_object, upload_body
from tests.images import SMALL_PNG


def test_a_full_flow_logs_no_token_and_no_email_even_at_debug_level(api, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, botocore, urllib3, pg8000
    body = api.create(upload_body(email="private.person@example.com", file_size=len(SMALL_PNG)),
                      headers={"idempotency-key": "log-check-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}).body
    put_object(body["uploadUrl"], SMALL_PNG, "image/png")
    api.confirm(body["uploadId"], body["sessionToken"])
    api.status(body["uploadId"], body["sessionToken"])
    api.confirm(body["uploadId"], "wrong-" + body["sessionToken"])

    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert len(caplog.records) > 10 and body["uploadId"] in text
    assert body["sessionToken"] not in text
    assert "private.person" not in text
