"""The storage wrapper on moto, with injected faults: errors become STORAGE_UNAVAILABLE, absence becomes None."""

import pytest
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from moto import mock_aws

from chalicelib.errors import StorageUnavailable
from chalicelib.storage import ObjectInfo, Storage, s3_client


@pytest.fixture
def storage():
    with mock_aws():
        client = s3_client(endpoint_url="https://s3.amazonaws.com", access_key_id="k", secret_access_key="s",
                           timeout=1)
        client.create_bucket(Bucket="uploads", CreateBucketConfiguration={"LocationConstraint": "auto"})
        yield Storage(client, "uploads"), client


def test_peek_reports_total_size_type_etag_and_only_the_first_bytes(storage):
    store, client = storage
    client.put_object(Bucket="uploads", Key="uploads/a/original.png", Body=b"0123456789" * 10,
                      ContentType="image/png")
    etag = client.head_object(Bucket="uploads", Key="uploads/a/original.png")["ETag"]

    assert store.peek("uploads/a/original.png", 8) == ObjectInfo(
        size=100, content_type="image/png", etag=etag, first_bytes=b"01234567")


def test_peek_of_an_object_shorter_than_the_range_returns_it_whole(storage):
    store, client = storage
    client.put_object(Bucket="uploads", Key="uploads/a/original.png", Body=b"12345", ContentType="image/png")

    peeked = store.peek("uploads/a/original.png", 64)

    assert (peeked.size, peeked.first_bytes) == (5, b"12345")


def test_peek_of_a_missing_or_empty_object_is_none(storage):
    store, client = storage
    client.put_object(Bucket="uploads", Key="uploads/empty/original.png", Body=b"", ContentType="image/png")

    assert store.peek("uploads/missing/original.png", 64) is None
    assert store.peek("uploads/empty/original.png", 64) is None


def inject(client, exc):
    def fail(**kwargs):
        raise exc

    client.meta.events.register("before-send.s3.*", fail)


@pytest.mark.parametrize("fault", [
    ReadTimeoutError(endpoint_url="https://s3"),
    ConnectTimeoutError(endpoint_url="https://s3"),
])
def test_timeouts_become_storage_unavailable(storage, fault):
    store, client = storage
    inject(client, fault)

    with pytest.raises(StorageUnavailable):
        store.peek("uploads/a/original.png", 64)
    with pytest.raises(StorageUnavailable):
        store.ping()


def test_a_server_error_becomes_storage_unavailable(storage):
    store, client = storage
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **kwargs):
            yield b""

    def answer_500(**kwargs):
        return AWSResponse("https://s3", 500, {}, Raw())

    client.meta.events.register("before-send.s3.*", answer_500)

    with pytest.raises(StorageUnavailable):
        store.peek("uploads/a/original.png", 64)


def test_presigning_signs_type_and_length_for_exactly_that_key(storage):
    url = storage[0].presign_put("uploads/a/original.png", content_type="image/png", content_length=5, expires_in=60)

    assert "/uploads/uploads/a/original.png?" in url
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in url
    assert "X-Amz-Expires=60" in url
