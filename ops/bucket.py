"""Create the uploads bucket if needed and give it the CORS rule the browser's PUT and the 3D viewer's GET need.

Needs an R2 API token with Admin Read & Write (bucket settings); the functions' own token, Object Read & Write
on the bucket, may not change them. A bucket in the EU jurisdiction has its own endpoint,
`https://<ACCOUNT_ID>.eu.r2.cloudflarestorage.com` (R2_ENDPOINT_URL; R2_ACCOUNT_ID builds the default one).
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from botocore.exceptions import ClientError

from chalicelib.config import allowed_origins_from_env, r2_endpoint
from chalicelib.storage import s3_client

# The browser sends exactly these on the presigned PUT (Content-Length is set by the browser itself).
CORS_ALLOWED_HEADERS = ["content-type"]
# What R2 answers a token that may not change the bucket's settings (an "Object Read & Write" one).
REFUSED = {"AccessDenied", "403", "Unauthorized", "401"}


class BucketSetupRefused(RuntimeError):
    """The storage refused a bucket setting to this token."""


def _refused(operation: str, exc: ClientError) -> BucketSetupRefused:
    code = exc.response.get("Error", {}).get("Code")
    return BucketSetupRefused(
        f"{operation} refused ({code}): creating the bucket and setting its CORS and lifecycle rules take an R2 "
        "API token with Admin Read & Write permissions, and its keys (the functions' token, Object Read & Write "
        "on this bucket, may not change them; wrong keys are refused alike). Create an admin token for this "
        "step, run it again with that token's keys, then delete the token")


def configure_bucket(*, endpoint_url: str, access_key_id: str, secret_access_key: str, bucket: str,
                     allowed_origins: Sequence[str], retention_days: int | None = None) -> None:
    """Idempotently create `bucket`, set its CORS rule for `allowed_origins` (the API's
    list) and its lifecycle rule.

    The lifecycle rule never expires originals by default: a key is chosen when the job is created, so pending
    and confirmed originals share the `uploads/` prefix, R2 has no tag-based rules to tell them apart, and an
    age rule would delete confirmed photos that processing still needs while their rows remain. Abandoned
    objects are deleted precisely by the hourly sweep (alarmed when it fails or misses a run).
    `retention_days` caps the age of every original, confirmed ones included: set it only once processing keeps
    what it needs elsewhere, and longer than processing can take.
    """
    client = s3_client(endpoint_url=endpoint_url, access_key_id=access_key_id,
                       secret_access_key=secret_access_key, timeout=10)
    try:
        _configure(client, bucket, allowed_origins, retention_days)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code in REFUSED:
            raise _refused(exc.operation_name, exc) from None
        raise


def _configure(client, bucket: str, allowed_origins: Sequence[str], retention_days: int | None) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
        client.create_bucket(Bucket=bucket)
    client.put_bucket_cors(
        Bucket=bucket,
        CORSConfiguration={
            "CORSRules": [{
                "AllowedOrigins": list(allowed_origins),
                # PUT for the photo; GET for the processing page's 3D viewer, which fetches the model.
                "AllowedMethods": ["PUT", "HEAD", "GET"],
                "AllowedHeaders": CORS_ALLOWED_HEADERS,
                "ExposeHeaders": ["ETag"],
                "MaxAgeSeconds": 3600,
            }]
        },
    )
    rule = {
        "ID": "expire-uploads" if retention_days else "abort-incomplete-uploads",
        "Status": "Enabled",
        "Filter": {"Prefix": "uploads/"},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }
    if retention_days:
        rule["Expiration"] = {"Days": retention_days}
    # Replaces the whole configuration, so an earlier age rule is removed when none is asked for.
    client.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [rule]})


def main() -> None:
    """Configure the bucket named by the R2_* variables for ALLOWED_ORIGINS (or ALLOWED_ORIGIN)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retention-days", type=int, default=None,
                        help="delete every original, confirmed ones included, after this many days (default: never;"
                             " abandoned uploads are deleted by the sweep)")
    args = parser.parse_args()
    env = os.environ
    endpoint = r2_endpoint(env)
    origins = allowed_origins_from_env(env)
    try:
        configure_bucket(endpoint_url=endpoint, access_key_id=env["R2_ACCESS_KEY_ID"],
                         secret_access_key=env["R2_SECRET_ACCESS_KEY"], bucket=env["R2_BUCKET"],
                         allowed_origins=origins, retention_days=args.retention_days)
    except BucketSetupRefused as exc:
        raise SystemExit(f"bucket {env['R2_BUCKET']}: {exc}") from None
    kept = f"originals expire after {args.retention_days} days" if args.retention_days else "originals never expire"
    print(f"bucket {env['R2_BUCKET']}: CORS for {', '.join(origins)}, {kept}, incomplete uploads aborted after 1 day")


if __name__ == "__main__":
    main()
