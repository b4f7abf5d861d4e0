"""Settings are read once and fail loudly, naming what is missing."""

import ssl

import pytest

from chalicelib.config import ConfigError, DatabaseSettings, RateLimit, Settings, parse_origins
from chalicelib.db import ssl_context_for

FULL = {
    "DATABASE_URL": "postgresql://app:s%40cret@ep-cool-1.eu-central-1.aws.neon.example/neondb?sslmode=require&channel_binding=require",
    "R2_ACCOUNT_ID": "abc123",
    "R2_ACCESS_KEY_ID": "key",
    "R2_SECRET_ACCESS_KEY": "secret",
    "DIGEST_SECRET": "test digest secret, at least 32 characters",
    "R2_BUCKET": "uploads",
    "ALLOWED_ORIGIN": "https://app.example.com",
}


def test_a_full_environment_gives_frozen_settings_with_defaults():
    settings = Settings.from_env(FULL)

    assert settings.r2_endpoint_url == "https://abc123.r2.cloudflarestorage.com"
    assert (settings.max_upload_bytes, settings.upload_url_ttl_seconds) == (20 * 1024 * 1024, 900)
    assert settings.posthog_api_key is None
    with pytest.raises(AttributeError):
        settings.r2_bucket = "other"


def test_every_missing_setting_is_named_at_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"R2_BUCKET": "uploads"})

    assert str(caught.value) == (
        "Missing required setting(s): DATABASE_URL, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY, DIGEST_SECRET, "
        "ALLOWED_ORIGINS, R2_ENDPOINT_URL (or R2_ACCOUNT_ID)"
    )


@pytest.mark.parametrize("length, accepted", [(31, False), (32, True)])
def test_a_digest_secret_shorter_than_32_characters_stops_start_up_without_showing_it(length, accepted):
    env = {**FULL, "DIGEST_SECRET": "s" * length}

    if accepted:
        assert Settings.from_env(env).digest_secret == "s" * 32
    else:
        with pytest.raises(ConfigError) as caught:
            Settings.from_env(env)
        assert str(caught.value) == "DIGEST_SECRET must be at least 32 characters, got 31"


def test_a_short_digest_secret_from_ssm_is_refused_when_it_arrives():
    env = {k: v for k, v in FULL.items() if k != "DIGEST_SECRET"}
    settings = Settings.from_env({**env, "DIGEST_SECRET_SSM_PARAMETER": "/p/digest"})

    with pytest.raises(ConfigError, match="^DIGEST_SECRET must be at least 32 characters, got 5$"):
        settings.with_secrets(lambda names: {"/p/digest": "short"})


@pytest.mark.parametrize("value", ["0", "-5", "lots"])
def test_a_non_positive_or_non_numeric_limit_is_refused_by_name(value):
    with pytest.raises(ConfigError, match=f"^MAX_UPLOAD_BYTES must be a positive whole number no greater than 5368709120, got '{value}'$"):
        Settings.from_env({**FULL, "MAX_UPLOAD_BYTES": value})


def test_a_neon_url_is_parsed_with_its_tls_settings():
    db = Settings.from_env(FULL).database

    assert (db.host, db.port, db.user, db.password, db.database) == (
        "ep-cool-1.eu-central-1.aws.neon.example", 5432, "app", "s@cret", "neondb")
    assert (db.sslmode, db.channel_binding) == ("require", "require")


@pytest.mark.parametrize("url, message", [
    ("mysql://u@h/db", "DATABASE_URL must start with postgresql://"),
    ("postgresql://h/db", "DATABASE_URL must name a user and a host"),
    ("postgresql://u@h/db?sslmode=sometimes", "DATABASE_URL has an unknown sslmode 'sometimes'"),
    ("postgresql://u@h/db?sslmode=disable&channel_binding=require",
     "DATABASE_URL asks for channel_binding=require without sslmode=require or stricter"),
])
def test_bad_database_urls_are_refused_with_a_reason(url, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        DatabaseSettings.from_url(url)


def test_sslmode_maps_to_libpq_meanings_and_never_falls_back_to_plaintext_when_tls_was_asked_for():
    def context(mode):
        root = "&sslrootcert=/etc/ssl/certs/ca-certificates.crt" if mode == "verify-ca" else ""
        return ssl_context_for(DatabaseSettings.from_url(f"postgresql://u@h/db?sslmode={mode}{root}"))

    assert context("disable") is False
    assert context("prefer") is None and context("allow") is None
    assert context("require") is True
    verify_ca, verify_full = context("verify-ca"), context("verify-full")
    assert isinstance(verify_full, ssl.SSLContext) and verify_full.check_hostname
    assert verify_full.verify_mode == ssl.CERT_REQUIRED
    assert isinstance(verify_ca, ssl.SSLContext) and not verify_ca.check_hostname
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED


def test_secrets_named_by_ssm_parameters_are_fetched_once_and_filled_in():
    import boto3
    from moto import mock_aws

    from chalicelib.config import fetch_ssm_parameters

    env = {k: v for k, v in FULL.items() if k not in ("DATABASE_URL", "R2_SECRET_ACCESS_KEY")}
    env.update(DATABASE_URL_SSM_PARAMETER="/3d-ultra/prod/database-url",
               R2_SECRET_ACCESS_KEY_SSM_PARAMETER="/3d-ultra/prod/r2-secret-access-key")
    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-central-1")
        ssm.put_parameter(Name="/3d-ultra/prod/database-url", Type="SecureString",
                          Value="postgresql://app:pw@ep-x.neon.example/neondb?sslmode=require")
        ssm.put_parameter(Name="/3d-ultra/prod/r2-secret-access-key", Type="SecureString", Value="r2-secret")
        calls = []

        def fetch(names):
            calls.append(names)
            return fetch_ssm_parameters(names, ssm)

        settings = Settings.from_env(env)
        resolved = settings.with_secrets(fetch)

    assert settings.database_url == "" and len(settings.ssm_parameters) == 2
    assert resolved.database.host == "ep-x.neon.example" and resolved.r2_secret_access_key == "r2-secret"
    assert resolved.ssm_parameters == () and resolved.with_secrets(fetch) is resolved
    assert len(calls) == 1


def test_a_missing_ssm_parameter_is_named():
    env = {k: v for k, v in FULL.items() if k != "DATABASE_URL"}
    env["DATABASE_URL_SSM_PARAMETER"] = "/3d-ultra/prod/nope"

    with pytest.raises(ConfigError, match="^SSM parameter\\(s\\) not found: /3d-ultra/prod/nope$"):
        Settings.from_env(env).with_secrets(lambda names: {})


def test_rate_limits_are_unset_by_default_and_parsed_from_n_per_seconds():
    assert (Settings.from_env(FULL).rate_limit_per_ip, Settings.from_env(FULL).rate_limit_per_email) == (None, None)

    settings = Settings.from_env({**FULL, "RATE_LIMIT_PER_IP": "20/600", "RATE_LIMIT_PER_EMAIL": " 5 / 600 "})

    assert settings.rate_limit_per_ip == RateLimit(count=20, seconds=600)
    assert settings.rate_limit_per_email == RateLimit(count=5, seconds=600)
    with pytest.raises(AttributeError):
        settings.rate_limit_per_ip.count = 1


@pytest.mark.parametrize("name", ["RATE_LIMIT_PER_IP", "RATE_LIMIT_PER_EMAIL"])
@pytest.mark.parametrize("value", ["20", "20/", "/600", "0/600", "20/0", "-1/60", "20/60s", "1.5/60", "ten/60",
                                   "20/60/2", "²/60"])
def test_an_unusable_rate_limit_is_refused_by_name(name, value):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**FULL, name: value})

    assert str(caught.value) == (
        f"{name} must be N/SECONDS with N from 1 to 1000000 and SECONDS from 1 to 315360000 (e.g. 20/600), "
        f"got {value!r}")


@pytest.mark.parametrize("ttl, abandoned", [("900", "900"), ("3600", "900"), ("86400", None)])
def test_an_upload_url_that_would_outlive_its_job_is_refused_at_start_up(ttl, abandoned):
    env = {**FULL, "UPLOAD_URL_TTL_SECONDS": ttl}
    if abandoned:
        env["ABANDONED_AFTER_SECONDS"] = abandoned

    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)

    assert str(caught.value) == (f"UPLOAD_URL_TTL_SECONDS ({ttl}) must be less than ABANDONED_AFTER_SECONDS "
                                 f"({abandoned or 86400})")


def test_an_upload_url_shorter_than_the_job_lifetime_is_accepted():
    settings = Settings.from_env({**FULL, "UPLOAD_URL_TTL_SECONDS": "899", "ABANDONED_AFTER_SECONDS": "900"})

    assert (settings.upload_url_ttl_seconds, settings.abandoned_after_seconds) == (899, 900)


def test_the_prod_stage_sets_limits_that_parse_and_an_upload_url_shorter_than_a_job():
    from ops.package import stage_environment

    env = {**stage_environment("prod"), "DATABASE_URL": FULL["DATABASE_URL"], "R2_ACCOUNT_ID": "abc123",
           "R2_ACCESS_KEY_ID": "key", "R2_SECRET_ACCESS_KEY": "secret",
           "DIGEST_SECRET": "test digest secret, at least 32 characters"}
    settings = Settings.from_env(env)

    assert settings.rate_limit_per_ip == RateLimit(count=30, seconds=600)
    assert settings.rate_limit_per_email == RateLimit(count=10, seconds=600)
    assert settings.upload_url_ttl_seconds < settings.abandoned_after_seconds


def test_allowed_origins_is_a_comma_separated_list_of_exact_origins_kept_in_order_without_repeats():
    env = {**FULL, "ALLOWED_ORIGIN": "", "ALLOWED_ORIGINS":
           "https://app.3d-ultra.example, https://www.3d-ultra.example,http://localhost:3000,https://app.3d-ultra.example"}

    assert Settings.from_env(env).allowed_origins == (
        "https://app.3d-ultra.example", "https://www.3d-ultra.example", "http://localhost:3000")


def test_the_single_allowed_origin_setting_is_a_list_of_one():
    assert Settings.from_env(FULL).allowed_origins == ("https://app.example.com",)


def test_allowed_origin_and_allowed_origins_may_agree_but_not_contradict():
    agreeing = {**FULL, "ALLOWED_ORIGINS": "https://www.example.com,https://app.example.com"}
    contradicting = {**FULL, "ALLOWED_ORIGINS": "https://www.example.com"}

    assert Settings.from_env(agreeing).allowed_origins == ("https://www.example.com", "https://app.example.com")
    with pytest.raises(ConfigError, match="^ALLOWED_ORIGIN is not among ALLOWED_ORIGINS: set only ALLOWED_ORIGINS$"):
        Settings.from_env(contradicting)


def test_allowed_origin_takes_only_one_origin():
    with pytest.raises(ConfigError, match="^ALLOWED_ORIGIN takes one origin; list several in ALLOWED_ORIGINS$"):
        Settings.from_env({**FULL, "ALLOWED_ORIGIN": "https://a.example,https://b.example"})


@pytest.mark.parametrize("raw, message", [
    ("https://app.example.com/", "ALLOWED_ORIGINS has an origin with a path or a trailing slash (origins have none): "
                                 "'https://app.example.com/'"),
    ("https://app.example.com/upload", "ALLOWED_ORIGINS has an origin with a path or a trailing slash (origins have "
                                       "none): 'https://app.example.com/upload'"),
    ("https://*.example.com", "ALLOWED_ORIGINS lists exact origins, no wildcards: 'https://*.example.com'"),
    ("*", "ALLOWED_ORIGINS lists exact origins, no wildcards: '*'"),
    ("app.example.com", "ALLOWED_ORIGINS has an origin that is not http(s)://host[:port]: 'app.example.com'"),
    ("ftp://app.example.com", "ALLOWED_ORIGINS has an origin that is not http(s)://host[:port]: "
                              "'ftp://app.example.com'"),
    ("https://App.Example.com", "ALLOWED_ORIGINS has an origin not in the browser's exact form "
                                "('https://app.example.com'): 'https://App.Example.com'"),
    ("https://app.example.com:443", "ALLOWED_ORIGINS has an origin with its scheme's default port (browsers omit "
                                    "it): 'https://app.example.com:443'"),
    ("http://localhost:99999", "ALLOWED_ORIGINS has an origin with an invalid port: 'http://localhost:99999'"),
    ("https://user:pw@app.example.com", "ALLOWED_ORIGINS has an origin with credentials in it: "
                                        "'https://user:pw@app.example.com'"),
    ("https://app.example.com?x=1", "ALLOWED_ORIGINS has an origin with a path or a trailing slash (origins have "
                                    "none): 'https://app.example.com?x=1'"),
    (" , ", "ALLOWED_ORIGINS lists no origin"),
])
def test_an_origin_the_browser_would_never_send_is_refused_by_name(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_origins(raw)

    assert str(caught.value) == message


def test_origins_with_ports_and_plain_http_for_development_are_accepted():
    assert parse_origins("http://127.0.0.1:8000,https://preview-42.3d-ultra.example:8443") == (
        "http://127.0.0.1:8000", "https://preview-42.3d-ultra.example:8443")


def test_make_dev_allows_its_own_origin_plus_what_allowed_origins_adds():
    from devstack.serve import dev_origins

    assert dev_origins(8000, {}) == ("http://127.0.0.1:8000",)
    assert dev_origins(8000, {"ALLOWED_ORIGINS": "http://localhost:3000,http://127.0.0.1:8000"}) == (
        "http://127.0.0.1:8000", "http://localhost:3000")
    assert dev_origins(8001, {"ALLOWED_ORIGIN": "https://app.example.com"}) == (
        "http://127.0.0.1:8001", "https://app.example.com")
