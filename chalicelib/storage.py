"""Object storage (Cloudflare R2, or any S3-compatible server) behind the domain's verbs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from botocore.exceptions import BotoCoreError, ClientError

from .errors import StorageUnavailable

log = logging.getLogger(__name__)
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# An empty object has no byte 0 to return.
_UNSATISFIABLE = {"416", "InvalidRange"}


@dataclass(frozen=True)
class ObjectInfo:
    """What one ranged GET tells about a stored object: its total size, type, ETag, first bytes and the headers
    it would be served with that change how a reader takes those bytes."""

    size: int
    content_type: str
    etag: str = ""
    first_bytes: bytes = b""
    content_encoding: str = ""
    content_disposition: str = ""


def s3_client(*, endpoint_url: str, access_key_id: str, secret_access_key: str, timeout: float):
    """A boto3 S3 client set up for R2: SigV4, region `auto`, bounded timeouts and retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4",  # pragma: no mutate (botocore's default for S3; explicit because R2 needs it)
        s3={"addressing_style": "path"},
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": 2, "mode": "standard"},
        # R2 rejects the CRC32 checksums that boto3 >= 1.36 adds to writes by default.
        # botocore lower-cases both values, so a change of case is no change (hence no mutation).
        request_checksum_calculation="when_required",  # pragma: no mutate
        response_checksum_validation="when_required",  # pragma: no mutate
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="auto",
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=config,
    )


class Storage:
    """One bucket of uploaded photos."""

    def __init__(self, client, bucket: str):
        self._client = client
        self._bucket = bucket

    def presign_put(self, key: str, *, content_type: str, content_length: int, expires_in: int) -> str:
        """A URL that lets the browser PUT exactly this many bytes of this type to this key (no network call)."""
        return self._client.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": content_length,
            },
            ExpiresIn=expires_in,
        )

    def presign_get(self, key: str, *, expires_in: int) -> str:
        """A URL that lets whoever holds it read this object until it expires (no network call)."""
        return self._client.generate_presigned_url("get_object", Params={"Bucket": self._bucket, "Key": key},
                                                   ExpiresIn=expires_in)

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Store these bytes at `key` (a result copied from the processing service)."""
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type,
                                    ContentLength=len(data))
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("put", exc) from exc

    def peek(self, key: str, length: int) -> Optional[ObjectInfo]:
        """The object's first `length` bytes with its size, type and ETag, in one request; None if it is absent
        or empty."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes=0-{length - 1}")
            body = response["Body"]
            try:
                # A server that ignores the range answers 200 with the whole object: read only what we need.
                first_bytes = body.read(length)
            finally:
                body.close()
        except ClientError as exc:
            error = exc.response.get("Error", {}).get("Code")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error in _NOT_FOUND or error in _UNSATISFIABLE or str(status) == "416":
                return None
            raise self._unavailable("get", exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable("get", exc) from exc
        return ObjectInfo(size=_total_size(response), content_type=response.get("ContentType", ""),
                          etag=response.get("ETag", ""), first_bytes=first_bytes,
                          content_encoding=response.get("ContentEncoding", ""),
                          content_disposition=response.get("ContentDisposition", ""))

    def delete(self, key: str) -> None:
        """Remove the object at `key` (absent objects are fine)."""
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("delete", exc) from exc

    def ping(self) -> None:
        """One request to prove the bucket answers."""
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable("head_bucket", exc) from exc

    @staticmethod
    def _unavailable(operation: str, exc: Exception) -> StorageUnavailable:
        # The S3 error code and HTTP status tell a missing key from a refused signature or a server fault.
        response = getattr(exc, "response", None) or {}
        log.error("storage %s failed: %s", operation, type(exc).__name__, extra={
            "operation": operation,
            "s3ErrorCode": response.get("Error", {}).get("Code"),
            "httpStatus": response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
        })
        return StorageUnavailable()


def _total_size(response: dict) -> int:
    """The whole object's size: `Content-Range: bytes 0-63/1234` on a 206, `Content-Length` on a 200."""
    content_range = response.get("ContentRange") or ""
    total = content_range.rpartition("/")[2]
    if total.isdigit():
        return int(total)
    return response["ContentLength"]
