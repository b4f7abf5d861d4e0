"""Every setting read from the environment, by its real name, and the database URL's libpq meanings."""

from dataclasses import asdict, fields

import pytest

from chalicelib.config import (NUMERIC_SETTINGS, ConfigError, DatabaseSettings, RateLimit, Settings,
                              fetch_ssm_parameters, r2_endpoint)

REQUIRED = {
    "DATABASE_URL": "postgresql://app@db.example/app",
    "R2_ENDPOINT_URL": "https://acc.r2.cloudflarestorage.com",
    "R2_ACCESS_KEY_ID": "key-id",
    "R2_SECRET_ACCESS_KEY": "secret-key",
    "R2_BUCKET": "photos",
    "DIGEST_SECRET": "test digest secret, at least 32 characters",
    "ALLOWED_ORIGIN": "https://app.example.com",
}
DEFAULTS = {
    "database_url": "postgresql://app@db.example/app",
    "r2_endpoint_url": "https://acc.r2.cloudflarestorage.com",
    "r2_access_key_id": "key-id",
    "r2_secret_access_key": "secret-key",
    "r2_bucket": "photos",
    "digest_secret": "test digest secret, at least 32 characters",
    "posthog_api_key": None,
    "posthog_host": "https://us.i.posthog.com",
    "analytics_budget_seconds": 1.0,
    "max_upload_bytes": 20 * 1024 * 1024,
    "upload_url_ttl_seconds": 900,
    "db_timeout_seconds": 5.0,
    "storage_timeout_seconds": 3.0,
    "abandoned_after_seconds": 86400,
    "allowed_origins": ("https://app.example.com",),
    "rate_limit_per_ip": None,
    "rate_limit_per_email": None,
    "email_retention_days": 30,
    "version": "dev",
    "stage": "dev",
    "secrets_max_age_seconds": 300.0,
    "jobs_queue_url": "",
    "jobs_queue_name": "three-d-ultra-jobs",
    "queue_timeout_seconds": 1.0,
    "processing_api_url": "https://api.replicate.com",
    "processing_api_token": "",
    "processing_model_version": "",
    "processing_image_input": "image",
    "processing_output_hosts": ("replicate.delivery", "*.replicate.delivery"),
    "processing_extra_input": "{}",
    "processing_timeout_seconds": 10.0,
    "processing_poll_seconds": 5,
    "processing_deadline_seconds": 1800,
    "processing_max_attempts": 3,
    "dispatch_after_seconds": 60,
    "max_result_bytes": 100 * 1024 * 1024,
    "result_retention_days": 30,
    "frontend_url": "",
    "email_from": "",
    "ses_configuration_set": "",
    "smtp_host": "",
    "smtp_port": 25,
    "email_timeout_seconds": 5.0,
    "email_max_tries": 5,
    "email_retry_seconds": 60,
    "ssm_parameters": (),
}


def named_fields(settings):
    return {field.name: getattr(settings, field.name) for field in fields(settings)}


def test_only_the_required_settings_give_the_documented_defaults():
    assert named_fields(Settings.from_env(REQUIRED)) == DEFAULTS  # every field, so a new one joins this table


@pytest.mark.parametrize("variable, raw, field, value", [
    ("DATABASE_URL", "postgresql://other@db2.example/x", "database_url", "postgresql://other@db2.example/x"),
    ("R2_ENDPOINT_URL", "http://127.0.0.1:8333", "r2_endpoint_url", "http://127.0.0.1:8333"),
    ("R2_ACCESS_KEY_ID", "AKID2", "r2_access_key_id", "AKID2"),
    ("R2_SECRET_ACCESS_KEY", "s3cr3t", "r2_secret_access_key", "s3cr3t"),
    ("R2_BUCKET", "other-bucket", "r2_bucket", "other-bucket"),
    ("POSTHOG_API_KEY", "phc_123", "posthog_api_key", "phc_123"),
    ("POSTHOG_HOST", "https://eu.i.posthog.com", "posthog_host", "https://eu.i.posthog.com"),
    ("ANALYTICS_BUDGET_SECONDS", "0.25", "analytics_budget_seconds", 0.25),
    ("MAX_UPLOAD_BYTES", "1048576", "max_upload_bytes", 1048576),
    ("UPLOAD_URL_TTL_SECONDS", "300", "upload_url_ttl_seconds", 300),
    ("DB_TIMEOUT_SECONDS", "2.5", "db_timeout_seconds", 2.5),
    ("STORAGE_TIMEOUT_SECONDS", "1.5", "storage_timeout_seconds", 1.5),
    ("ABANDONED_AFTER_SECONDS", "3600", "abandoned_after_seconds", 3600),
    ("ALLOWED_ORIGIN", "https://other.example", "allowed_origins", ("https://other.example",)),
    ("ALLOWED_ORIGINS", "https://app.example.com,http://127.0.0.1:8000", "allowed_origins",
     ("https://app.example.com", "http://127.0.0.1:8000")),
    ("EMAIL_RETENTION_DAYS", "7", "email_retention_days", 7),
    ("SECRETS_MAX_AGE_SECONDS", "60.5", "secrets_max_age_seconds", 60.5),
    ("VERSION", "v1.2.3-4-gabcdef0", "version", "v1.2.3-4-gabcdef0"),
    ("STAGE", "prod", "stage", "prod"),
    ("JOBS_QUEUE_URL", "https://sqs.eu-central-1.amazonaws.com/1/q", "jobs_queue_url",
     "https://sqs.eu-central-1.amazonaws.com/1/q"),
    ("JOBS_QUEUE_NAME", "q", "jobs_queue_name", "q"),
    ("QUEUE_TIMEOUT_SECONDS", "0.5", "queue_timeout_seconds", 0.5),
    ("PROCESSING_API_URL", "https://processing.example", "processing_api_url", "https://processing.example"),
    ("PROCESSING_TIMEOUT_SECONDS", "3.5", "processing_timeout_seconds", 3.5),
    ("PROCESSING_OUTPUT_HOSTS", "cdn.example, *.Delivery.example", "processing_output_hosts",
     ("cdn.example", "*.delivery.example")),
    ("PROCESSING_POLL_SECONDS", "2", "processing_poll_seconds", 2),
    ("PROCESSING_DEADLINE_SECONDS", "600", "processing_deadline_seconds", 600),
    ("PROCESSING_MAX_ATTEMPTS", "5", "processing_max_attempts", 5),
    ("DISPATCH_AFTER_SECONDS", "30", "dispatch_after_seconds", 30),
    ("MAX_RESULT_BYTES", "1048576", "max_result_bytes", 1048576),
    ("RESULT_RETENTION_DAYS", "7", "result_retention_days", 7),
    ("FRONTEND_URL", "https://app.3d-ultra.example", "frontend_url", "https://app.3d-ultra.example"),
    ("SMTP_PORT", "2525", "smtp_port", 2525),
    ("EMAIL_TIMEOUT_SECONDS", "2.5", "email_timeout_seconds", 2.5),
    ("EMAIL_MAX_TRIES", "3", "email_max_tries", 3),
    ("EMAIL_RETRY_SECONDS", "30", "email_retry_seconds", 30),
])
def test_each_setting_is_read_from_its_own_variable(variable, raw, field, value):
    settings = Settings.from_env({**REQUIRED, variable: raw})

    assert named_fields(settings) == {**DEFAULTS, field: value}
    assert type(getattr(settings, field)) is type(value)


@pytest.mark.parametrize("variable", ["POSTHOG_API_KEY", "POSTHOG_HOST", "ANALYTICS_BUDGET_SECONDS",
                                      "MAX_UPLOAD_BYTES", "UPLOAD_URL_TTL_SECONDS", "DB_TIMEOUT_SECONDS",
                                      "STORAGE_TIMEOUT_SECONDS", "ABANDONED_AFTER_SECONDS", "EMAIL_RETENTION_DAYS",
                                      "SECRETS_MAX_AGE_SECONDS", "VERSION", "STAGE", "RATE_LIMIT_PER_IP",
                                      "RATE_LIMIT_PER_EMAIL"])
def test_an_empty_optional_setting_means_its_default(variable):
    assert named_fields(Settings.from_env({**REQUIRED, variable: ""})) == DEFAULTS


@pytest.mark.parametrize("variable, raw, other", [
    ("MAX_UPLOAD_BYTES", "1", {}), ("UPLOAD_URL_TTL_SECONDS", "1", {}),
    # The abandoned-job age must exceed the URL lifetime, whose own smallest value is 1.
    ("ABANDONED_AFTER_SECONDS", "2", {"UPLOAD_URL_TTL_SECONDS": "1"}),
    ("DB_TIMEOUT_SECONDS", "0.5", {}), ("STORAGE_TIMEOUT_SECONDS", "0.5", {}), ("ANALYTICS_BUDGET_SECONDS", "0.5", {}),
])
def test_the_smallest_positive_values_are_accepted(variable, raw, other):
    settings = Settings.from_env({**REQUIRED, **other, variable: raw})

    assert getattr(settings, variable.lower()) == float(raw)


# Every numeric setting: its type and its largest value. A value outside, and nan or infinity, stops start-up.
CEILINGS = [
    ("ANALYTICS_BUDGET_SECONDS", float, 900), ("DB_TIMEOUT_SECONDS", float, 900),
    ("STORAGE_TIMEOUT_SECONDS", float, 900), ("SECRETS_MAX_AGE_SECONDS", float, 86400),
    ("MAX_UPLOAD_BYTES", int, 5 * 1024 ** 3), ("UPLOAD_URL_TTL_SECONDS", int, 7 * 86400),
    ("ABANDONED_AFTER_SECONDS", int, 10 * 365 * 86400), ("EMAIL_RETENTION_DAYS", int, 3650),
    ("QUEUE_TIMEOUT_SECONDS", float, 10), ("PROCESSING_TIMEOUT_SECONDS", float, 60),
    ("PROCESSING_POLL_SECONDS", int, 900), ("PROCESSING_DEADLINE_SECONDS", int, 7 * 86400),
    ("PROCESSING_MAX_ATTEMPTS", int, 20), ("DISPATCH_AFTER_SECONDS", int, 86400),
    ("MAX_RESULT_BYTES", int, 1024 ** 3), ("RESULT_RETENTION_DAYS", int, 3650),
    ("SMTP_PORT", int, 65535), ("EMAIL_TIMEOUT_SECONDS", float, 60), ("EMAIL_MAX_TRIES", int, 20),
    ("EMAIL_RETRY_SECONDS", int, 900),
]
# The URL lifetime must stay below the abandoned-job age, so its own ceiling is tried with a longer age.
ROOM = {"UPLOAD_URL_TTL_SECONDS": {"ABANDONED_AFTER_SECONDS": str(7 * 86400 + 1)}}


def test_every_numeric_setting_has_a_ceiling_in_the_table():
    numeric = {field.name.upper() for field in fields(Settings) if field.type in ("int", "float")}

    assert numeric == {variable for variable, _, _ in CEILINGS}
    assert NUMERIC_SETTINGS == {variable: (kind, largest) for variable, kind, largest in CEILINGS}


@pytest.mark.parametrize("variable, kind, largest", CEILINGS)
def test_each_numeric_setting_accepts_its_largest_value(variable, kind, largest):
    settings = Settings.from_env({**REQUIRED, **ROOM.get(variable, {}), variable: str(largest)})

    assert getattr(settings, variable.lower()) == largest and type(getattr(settings, variable.lower())) is kind


@pytest.mark.parametrize("variable, kind, largest", CEILINGS)
@pytest.mark.parametrize("raw", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "0", "-1", "ten", "",
                                 "1" + "0" * 5000, "above"])
def test_a_numeric_setting_that_is_not_finite_positive_and_at_most_its_ceiling_stops_start_up_by_name(
        variable, kind, largest, raw):
    if raw == "":
        raw = " "  # blank but not empty (empty means the default)
    if raw == "above":
        raw = str(largest + 1) if kind is int else f"{largest}.001"
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, **ROOM.get(variable, {}), variable: raw})

    whole = "whole " if kind is int else ""
    assert str(caught.value) == f"{variable} must be a positive {whole}number no greater than {largest}, got {raw!r}"


@pytest.mark.parametrize("variable, raw", [("MAX_UPLOAD_BYTES", "1.5"), ("UPLOAD_URL_TTL_SECONDS", "1e3")])
def test_a_whole_number_setting_refuses_a_fraction_or_an_exponent(variable, raw):
    with pytest.raises(ConfigError, match=f"^{variable} must be a positive whole number"):
        Settings.from_env({**REQUIRED, variable: raw})


@pytest.mark.parametrize("variable, field", [("RATE_LIMIT_PER_IP", "rate_limit_per_ip"),
                                             ("RATE_LIMIT_PER_EMAIL", "rate_limit_per_email")])
@pytest.mark.parametrize("raw, limit", [("1/1", RateLimit(1, 1)), ("10/60", RateLimit(10, 60)),
                                        (" 10 / 60 ", RateLimit(10, 60)), ("   ", None), ("", None)])
def test_each_rate_limit_is_read_from_its_own_variable_down_to_one_per_second(variable, field, raw, limit):
    settings = Settings.from_env({**REQUIRED, variable: raw})

    assert named_fields(settings) == {**DEFAULTS, field: limit}


@pytest.mark.parametrize("raw", ["0/60", "10/0", "10/", "x/60", "1/0", "0/1", "1000001/60", "1/315360001",
                                 "1" + "0" * 5000 + "/60"])
def test_a_rate_limit_below_one_per_second_or_malformed_is_refused_by_its_name(raw):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, "RATE_LIMIT_PER_EMAIL": raw})

    assert str(caught.value) == ("RATE_LIMIT_PER_EMAIL must be N/SECONDS with N from 1 to 1000000 and SECONDS from 1 "
                                 f"to 315360000 (e.g. 20/600), got {raw!r}")


@pytest.mark.parametrize("ttl, abandoned, accepted", [("3599", "3600", True), ("3600", "3600", False),
                                                      ("1", "2", True), ("2", "2", False)])
def test_the_url_lifetime_must_be_shorter_than_the_abandoned_age_by_at_least_a_second(ttl, abandoned, accepted):
    env = {**REQUIRED, "UPLOAD_URL_TTL_SECONDS": ttl, "ABANDONED_AFTER_SECONDS": abandoned}

    if accepted:
        settings = Settings.from_env(env)
        assert (settings.upload_url_ttl_seconds, settings.abandoned_after_seconds) == (int(ttl), int(abandoned))
    else:
        with pytest.raises(ConfigError) as caught:
            Settings.from_env(env)
        assert str(caught.value) == (f"UPLOAD_URL_TTL_SECONDS ({ttl}) must be less than ABANDONED_AFTER_SECONDS "
                                     f"({abandoned})")


def test_an_account_id_gives_the_r2_endpoint_and_an_explicit_endpoint_wins():
    without_endpoint = {k: v for k, v in REQUIRED.items() if k != "R2_ENDPOINT_URL"}

    assert Settings.from_env({**without_endpoint, "R2_ACCOUNT_ID": "acc9"}).r2_endpoint_url == (
        "https://acc9.r2.cloudflarestorage.com")
    assert r2_endpoint({"R2_ENDPOINT_URL": "http://127.0.0.1:1", "R2_ACCOUNT_ID": "acc9"}) == "http://127.0.0.1:1"
    assert r2_endpoint({}) == ""


def test_a_bad_database_url_fails_at_start_up():
    with pytest.raises(ConfigError, match="^DATABASE_URL must start with postgresql://$"):
        Settings.from_env({**REQUIRED, "DATABASE_URL": "mysql://app@db/app"})


def test_every_secret_may_be_named_by_an_ssm_parameter_instead():
    names = ("DATABASE_URL", "R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "POSTHOG_API_KEY",
             "DIGEST_SECRET")
    env = {k: v for k, v in REQUIRED.items() if k not in names}
    env.update({name + "_SSM_PARAMETER": f"/p/{name.lower()}" for name in names})

    settings = Settings.from_env(env)

    assert settings.ssm_parameters == tuple((name, f"/p/{name.lower()}") for name in names)
    assert (settings.database_url, settings.r2_endpoint_url, settings.r2_access_key_id,
            settings.r2_secret_access_key, settings.posthog_api_key, settings.digest_secret) == (
        "", "", "", "", None, "")
    values = {"/p/database_url": "postgresql://u@h/d", "/p/r2_endpoint_url": "https://e.example",
              "/p/r2_access_key_id": "AK", "/p/r2_secret_access_key": "SK", "/p/posthog_api_key": "phc",
              "/p/digest_secret": "d" * 32}
    resolved = settings.with_secrets(lambda wanted: {name: values[name] for name in wanted})
    assert (resolved.database_url, resolved.r2_endpoint_url, resolved.r2_access_key_id,
            resolved.r2_secret_access_key, resolved.posthog_api_key, resolved.digest_secret,
            resolved.ssm_parameters) == ("postgresql://u@h/d", "https://e.example", "AK", "SK", "phc", "d" * 32, ())


def test_a_value_given_directly_wins_over_its_ssm_parameter():
    settings = Settings.from_env({**REQUIRED, "DATABASE_URL_SSM_PARAMETER": "/p/db"})

    assert settings.ssm_parameters == ()


def test_a_database_url_from_ssm_is_checked_when_it_arrives():
    env = {k: v for k, v in REQUIRED.items() if k != "DATABASE_URL"}
    settings = Settings.from_env({**env, "DATABASE_URL_SSM_PARAMETER": "/p/db"})

    with pytest.raises(ConfigError, match="^DATABASE_URL must name a user and a host$"):
        settings.with_secrets(lambda names: {"/p/db": "postgresql:///nohost"})


def test_every_missing_ssm_parameter_is_named():
    env = {k: v for k, v in REQUIRED.items() if k not in ("DATABASE_URL", "R2_BUCKET")}
    settings = Settings.from_env({**env, "R2_BUCKET": "b", "DATABASE_URL_SSM_PARAMETER": "/p/db",
                                  "R2_ACCESS_KEY_ID_SSM_PARAMETER": "/p/ak", "R2_ACCESS_KEY_ID": ""})

    with pytest.raises(ConfigError) as caught:
        settings.with_secrets(lambda names: {})

    assert str(caught.value) == "SSM parameter(s) not found: /p/db, /p/ak"


class RecordingSsm:
    def __init__(self, stored):
        self.stored, self.calls = stored, []

    def get_parameters(self, Names, WithDecryption):
        self.calls.append((list(Names), WithDecryption))
        return {"Parameters": [{"Name": n, "Value": self.stored[n]} for n in Names if n in self.stored]}


def test_ssm_is_asked_for_at_most_ten_names_per_call_with_decryption():
    names = [f"/p/{i}" for i in range(23)]
    ssm = RecordingSsm({name: f"v{i}" for i, name in enumerate(names)})

    values = fetch_ssm_parameters(names, ssm)

    assert values == {name: f"v{i}" for i, name in enumerate(names)}
    assert ssm.calls == [(names[0:10], True), (names[10:20], True), (names[20:23], True)]


def test_ten_names_take_one_call():
    names = [f"/p/{i}" for i in range(10)]
    ssm = RecordingSsm({})

    assert fetch_ssm_parameters(names, ssm) == {}
    assert ssm.calls == [(names, True)]


def test_without_a_client_ssm_is_reached_through_boto3_with_short_timeouts_and_one_retry(monkeypatch):
    import boto3

    made = []
    monkeypatch.setattr(boto3, "client", lambda service, config: made.append((service, config))
                        or RecordingSsm({"/p/a": "1"}))

    assert fetch_ssm_parameters(["/p/a"]) == {"/p/a": "1"}
    ((service, config),) = made
    assert (service, config.connect_timeout, config.read_timeout, config.retries) == (
        "ssm", 2, 5, {"max_attempts": 2, "mode": "standard"})


def test_the_postgres_scheme_is_an_alias_and_the_defaults_are_libpqs():
    db = DatabaseSettings.from_url("postgres://app@db.example")

    assert asdict(db) == {"host": "db.example", "port": 5432, "user": "app", "password": None, "database": "app",
                          "sslmode": "prefer", "sslrootcert": None, "channel_binding": "prefer"}


def test_every_part_of_a_full_url_is_read_and_unquoted():
    db = DatabaseSettings.from_url(
        "postgresql://ap%40p:p%2Fw@db.example:6543/my%20db?sslmode=verify-full&sslrootcert=/etc/ca.pem"
        "&channel_binding=require&sslmode=verify-ca")

    assert asdict(db) == {"host": "db.example", "port": 6543, "user": "ap@p", "password": "p/w",
                          "database": "my db", "sslmode": "verify-ca", "sslrootcert": "/etc/ca.pem",
                          "channel_binding": "require"}


def test_sslrootcert_system_alone_means_verify_full_as_in_libpq_16():
    db = DatabaseSettings.from_url("postgresql://u@db.example/d?sslrootcert=system&channel_binding=require")

    assert (db.sslmode, db.sslrootcert, db.channel_binding) == ("verify-full", "system", "require")
    assert DatabaseSettings.from_url("postgresql://u@h/d?sslrootcert=system&sslmode=verify-full").sslmode == (
        "verify-full")


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer", "require", "verify-ca"])
def test_sslrootcert_system_with_a_weaker_sslmode_stops_start_up_by_name(sslmode):
    url = f"postgresql://u@db.example/d?sslmode={sslmode}&sslrootcert=system"

    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, "DATABASE_URL": url})

    assert str(caught.value) == (f"DATABASE_URL has sslrootcert=system with the weaker sslmode {sslmode!r}: "
                                 "use sslmode=verify-full, or leave sslmode out")


def test_verify_ca_without_a_root_certificate_stops_start_up_by_name():
    # Only the authority would be checked, against the system's: any public certificate for any name would pass.
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, "DATABASE_URL": "postgresql://u@db.example/d?sslmode=verify-ca"})

    assert str(caught.value) == ("DATABASE_URL has sslmode=verify-ca without sslrootcert: the system's authorities "
                                 "vouch for any public name, so name the CA file in sslrootcert, or use "
                                 "sslmode=verify-full")


@pytest.mark.parametrize("sslmode", ["disable", "allow", "prefer"])
def test_channel_binding_cannot_be_required_without_tls(sslmode):
    with pytest.raises(ConfigError, match="channel_binding=require without sslmode=require"):
        DatabaseSettings.from_url(f"postgresql://u@h/d?sslmode={sslmode}&channel_binding=require")


@pytest.mark.parametrize("sslmode", ["require", "verify-ca", "verify-full"])
def test_channel_binding_may_be_required_with_tls(sslmode):
    db = DatabaseSettings.from_url(f"postgresql://u@h/d?sslmode={sslmode}&channel_binding=require"
                                   "&sslrootcert=/etc/ca.pem")

    assert (db.sslmode, db.channel_binding) == (sslmode, "require")


def test_channel_binding_required_without_any_sslmode_is_refused():
    with pytest.raises(ConfigError, match="channel_binding=require without sslmode=require"):
        DatabaseSettings.from_url("postgresql://u@h/d?channel_binding=require")


def test_an_invalid_port_is_named():
    with pytest.raises(ConfigError, match="^DATABASE_URL has an invalid port$"):
        DatabaseSettings.from_url("postgresql://u@h:99999/d")


def test_only_the_leading_slash_is_taken_off_the_database_name():
    assert DatabaseSettings.from_url("postgresql://u@h/Xdb/").database == "Xdb/"


def test_a_worker_with_a_model_and_no_token_or_queue_stops_start_up_naming_both():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, "PROCESSING_MODEL_VERSION": "abc123"})

    assert str(raised.value) == "The processing service needs: PROCESSING_API_TOKEN, JOBS_QUEUE_URL"


def test_the_processing_token_may_come_from_ssm_and_then_counts_as_given():
    settings = Settings.from_env({**REQUIRED, "PROCESSING_MODEL_VERSION": "abc123", "JOBS_QUEUE_URL": "https://q",
                                  "PROCESSING_API_TOKEN_SSM_PARAMETER": "/3d-ultra/prod/processing-api-token"})

    assert settings.ssm_parameters == (("PROCESSING_API_TOKEN", "/3d-ultra/prod/processing-api-token"),)
    assert settings.processing_configured


@pytest.mark.parametrize("url, message", [
    ("http://processing.example", "PROCESSING_API_URL must use https (plain http only on 127.0.0.1 or localhost)"),
    ("ftp://processing.example", "PROCESSING_API_URL must be an http(s) URL, got 'ftp://processing.example'"),
])
def test_a_processing_url_that_would_expose_the_token_stops_start_up(url, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, "PROCESSING_MODEL_VERSION": "v", "PROCESSING_API_TOKEN": "t",
                           "JOBS_QUEUE_URL": "https://q", "PROCESSING_API_URL": url})

    assert str(raised.value) == message


def test_a_deadline_within_two_polls_stops_start_up():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, "PROCESSING_MODEL_VERSION": "v", "PROCESSING_API_TOKEN": "t",
                           "JOBS_QUEUE_URL": "https://q", "PROCESSING_POLL_SECONDS": "60",
                           "PROCESSING_DEADLINE_SECONDS": "120"})

    assert str(raised.value) == "PROCESSING_DEADLINE_SECONDS must be more than twice PROCESSING_POLL_SECONDS"


EMAIL = {"EMAIL_FROM": "3D Ultra <no-reply@3d-ultra.example>", "FRONTEND_URL": "https://app.3d-ultra.example"}


def test_email_through_ses_takes_its_sender_link_origin_and_configuration_set():
    settings = Settings.from_env({**REQUIRED, **EMAIL, "SES_CONFIGURATION_SET": "three-d-ultra"})

    assert named_fields(settings) == {**DEFAULTS, "email_from": "3D Ultra <no-reply@3d-ultra.example>",
                                      "frontend_url": "https://app.3d-ultra.example",
                                      "ses_configuration_set": "three-d-ultra"}
    assert settings.email_configured


def test_email_through_an_smtp_server_takes_its_host_and_port():
    settings = Settings.from_env({**REQUIRED, **EMAIL, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": "2525"})

    assert (settings.smtp_host, settings.smtp_port, settings.email_configured) == ("127.0.0.1", 2525, True)


def test_without_a_sender_email_is_off():
    assert not Settings.from_env(REQUIRED).email_configured


@pytest.mark.parametrize("env, message", [
    ({"EMAIL_FROM": "no-reply@3d-ultra.example"},
     "The email needs: FRONTEND_URL, SES_CONFIGURATION_SET (or SMTP_HOST)"),
    ({"SES_CONFIGURATION_SET": "three-d-ultra"}, "The email needs: EMAIL_FROM, FRONTEND_URL"),
    ({"SMTP_HOST": "127.0.0.1", "FRONTEND_URL": "http://127.0.0.1:8000"}, "The email needs: EMAIL_FROM"),
    ({**EMAIL, "SES_CONFIGURATION_SET": "c", "SMTP_HOST": "127.0.0.1"},
     "SES_CONFIGURATION_SET and SMTP_HOST name two ways to send email: set one"),
    ({**EMAIL, "SES_CONFIGURATION_SET": "c", "EMAIL_FROM": "3D Ultra"},
     "EMAIL_FROM must be an address such as '3D Ultra <no-reply@3d-ultra.example>', got '3D Ultra'"),
])
def test_an_incomplete_or_contradictory_email_setting_stops_start_up_naming_it(env, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, **env})

    assert str(raised.value) == message


@pytest.mark.parametrize("url, message", [
    ("http://app.3d-ultra.example",
     "FRONTEND_URL must use https (plain http only on 127.0.0.1 or localhost), got 'http://app.3d-ultra.example'"),
    ("https://app.3d-ultra.example/", "FRONTEND_URL must be scheme://host[:port][/path] with no trailing slash, "
                                      "query or fragment, got 'https://app.3d-ultra.example/'"),
    ("https://app.3d-ultra.example/#x", "FRONTEND_URL must be scheme://host[:port][/path] with no trailing slash, "
                                        "query or fragment, got 'https://app.3d-ultra.example/#x'"),
    ("app.3d-ultra.example", "FRONTEND_URL must be an http(s) URL, got 'app.3d-ultra.example'"),
    ("https://app.3d-ultra.example:99999", "FRONTEND_URL has an invalid port: 'https://app.3d-ultra.example:99999'"),
])
def test_a_frontend_url_the_emailed_link_could_not_use_stops_start_up(url, message):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**REQUIRED, "FRONTEND_URL": url})

    assert str(raised.value) == message


def test_the_frontend_url_may_have_a_path_and_make_devs_plain_http_on_loopback():
    assert Settings.from_env({**REQUIRED, "FRONTEND_URL": "https://3d-ultra.example/app"}).frontend_url == (
        "https://3d-ultra.example/app")
    assert Settings.from_env({**REQUIRED, "FRONTEND_URL": "http://127.0.0.1:8000"}).frontend_url == (
        "http://127.0.0.1:8000")
