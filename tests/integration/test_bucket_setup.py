"""The bucket set-up command against the local S3-compatible server."""

from ops.bucket import configure_bucket
from tests.helpers import http


def setup(stack_env, bucket, *origins):
    configure_bucket(endpoint_url=stack_env["R2_ENDPOINT_URL"], access_key_id=stack_env["R2_ACCESS_KEY_ID"],
                     secret_access_key=stack_env["R2_SECRET_ACCESS_KEY"], bucket=bucket, allowed_origins=origins,
                     retention_days=7)


def test_setup_creates_the_bucket_with_cors_and_lifecycle_and_can_run_again(stack_env, live_deps):
    client = live_deps.storage._client
    setup(stack_env, "setup-check", "https://app.example.com", "http://localhost:3000")
    setup(stack_env, "setup-check", "https://app.example.com", "http://localhost:3000")

    assert client.get_bucket_cors(Bucket="setup-check")["CORSRules"] == [{
        "AllowedHeaders": ["content-type"], "AllowedMethods": ["PUT", "HEAD", "GET"],
        "AllowedOrigins": ["https://app.example.com", "http://localhost:3000"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3600}]
    rule = client.get_bucket_lifecycle_configuration(Bucket="setup-check")["Rules"][0]
    assert (rule["Filter"], rule["Expiration"], rule["Status"]) == ({"Prefix": "uploads/"}, {"Days": 7}, "Enabled")


def test_the_cors_rule_admits_each_configured_origin_and_no_other(stack_env):
    setup(stack_env, "cors-check", "https://app.example.com", "https://www.example.com")
    url = f"{stack_env['R2_ENDPOINT_URL']}/cors-check/uploads/x/original.png"

    def preflight(origin):
        return http("OPTIONS", url, headers={"Origin": origin, "Access-Control-Request-Method": "PUT",
                                             "Access-Control-Request-Headers": "content-type"})[0]

    assert preflight("https://app.example.com") == 200
    assert preflight("https://www.example.com") == 200
    assert preflight("https://evil.example.com") == 403


def test_by_default_the_lifecycle_rule_never_expires_an_original_and_replaces_an_older_age_rule(stack_env, live_deps):
    client = live_deps.storage._client
    setup(stack_env, "lifecycle-check", "https://app.example.com")  # an age rule, as older set-ups had
    configure_bucket(endpoint_url=stack_env["R2_ENDPOINT_URL"], access_key_id=stack_env["R2_ACCESS_KEY_ID"],
                     secret_access_key=stack_env["R2_SECRET_ACCESS_KEY"], bucket="lifecycle-check",
                     allowed_origins=["https://app.example.com"])

    rules = client.get_bucket_lifecycle_configuration(Bucket="lifecycle-check")["Rules"]
    assert [r.get("Expiration") for r in rules] == [None]
    assert rules[0]["Filter"] == {"Prefix": "uploads/"}
