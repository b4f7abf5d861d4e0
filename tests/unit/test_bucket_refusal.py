"""ops.bucket with a token that may not change bucket settings: R2's AccessDenied, named for what it is."""

import pytest
from botocore.stub import Stubber

import ops.bucket
from chalicelib.storage import s3_client
from ops.bucket import BucketSetupRefused, configure_bucket


def test_an_object_only_token_is_told_the_set_up_takes_an_admin_token(monkeypatch):
    client = s3_client(endpoint_url="https://account.r2.cloudflarestorage.com", access_key_id="k",
                       secret_access_key="s", timeout=1)
    stub = Stubber(client)
    stub.add_response("head_bucket", {}, {"Bucket": "uploads"})
    stub.add_client_error("put_bucket_cors", service_error_code="AccessDenied", http_status_code=403)
    monkeypatch.setattr(ops.bucket, "s3_client", lambda **_: client)

    with stub, pytest.raises(BucketSetupRefused, match=r"PutBucketCors refused \(AccessDenied\): .* an R2 API token "
                                                       r"with Admin Read & Write permissions"):
        configure_bucket(endpoint_url="-", access_key_id="k", secret_access_key="s", bucket="uploads",
                         allowed_origins=["https://app.3d-ultra.com"])


def test_other_storage_errors_are_not_taken_for_a_missing_permission(monkeypatch):
    client = s3_client(endpoint_url="https://account.r2.cloudflarestorage.com", access_key_id="k",
                       secret_access_key="s", timeout=1)
    stub = Stubber(client)
    stub.add_client_error("head_bucket", service_error_code="InternalError", http_status_code=500)
    monkeypatch.setattr(ops.bucket, "s3_client", lambda **_: client)

    with stub, pytest.raises(Exception) as raised:
        configure_bucket(endpoint_url="-", access_key_id="k", secret_access_key="s", bucket="uploads",
                         allowed_origins=["https://app.3d-ultra.com"])
    assert not isinstance(raised.value, BucketSetupRefused)
