"""Settings: read once from the environment into a frozen object."""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Optional, Tuple
from email.utils import parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

MIB = 1024 * 1024
# Secrets may be given directly (local runs) or as the name of an SSM parameter, `<NAME>_SSM_PARAMETER` (production).
SECRET_NAMES = ("DATABASE_URL", "R2_ENDPOINT_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "POSTHOG_API_KEY",
                "DIGEST_SECRET", "PROCESSING_API_TOKEN")
# The key of the HMACs kept instead of Idempotency-Keys, request fingerprints and rate-limit keys: a random string
# of at least this many characters (`python -c "import secrets; print(secrets.token_urlsafe(32))"`).
MIN_DIGEST_SECRET_LENGTH = 32
SSM_SUFFIX = "_SSM_PARAMETER"
# libpq's meanings: `require` accepts only SCRAM-SHA-256-PLUS (the password proof bound to this TLS channel),
# `disable` never binds, `prefer` binds when the server offers it.
CHANNEL_BINDING_MODES = ("disable", "prefer", "require")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

# Every numeric setting is positive, finite and at most its ceiling here, or start-up stops naming it: a nan
# timeout made every request fail later, a nan or infinite re-read age silently stopped re-reading secrets.
LAMBDA_MAX_SECONDS = 900  # no invocation lives longer, so no wait inside one needs to
TEN_YEARS_SECONDS = 10 * 365 * 24 * 3600
RATE_LIMIT_COUNT_MAX = 1_000_000  # a limited key keeps up to N creation times (8 bytes each) in one row
NUMERIC_SETTINGS = {  # name: (type, largest value)
    "ANALYTICS_BUDGET_SECONDS": (float, LAMBDA_MAX_SECONDS),
    "DB_TIMEOUT_SECONDS": (float, LAMBDA_MAX_SECONDS),
    "STORAGE_TIMEOUT_SECONDS": (float, LAMBDA_MAX_SECONDS),
    "SECRETS_MAX_AGE_SECONDS": (float, 24 * 3600),
    "MAX_UPLOAD_BYTES": (int, 5 * 1024 * MIB),  # the largest single PUT S3 takes
    "UPLOAD_URL_TTL_SECONDS": (int, 7 * 24 * 3600),  # the longest a SigV4 presigned URL may live
    "ABANDONED_AFTER_SECONDS": (int, TEN_YEARS_SECONDS),
    "EMAIL_RETENTION_DAYS": (int, 3650),
    "QUEUE_TIMEOUT_SECONDS": (float, 10),  # the confirm waits this long at most for its hand-off
    "PROCESSING_TIMEOUT_SECONDS": (float, 60),
    "PROCESSING_POLL_SECONDS": (int, 900),  # SQS's longest message delay
    "PROCESSING_DEADLINE_SECONDS": (int, 7 * 24 * 3600),
    "PROCESSING_MAX_ATTEMPTS": (int, 20),
    "DISPATCH_AFTER_SECONDS": (int, 24 * 3600),
    "MAX_RESULT_BYTES": (int, 1024 * MIB),  # what a worker holds in memory at once
    "RESULT_RETENTION_DAYS": (int, 3650),
    "SMTP_PORT": (int, 65535),
    "EMAIL_TIMEOUT_SECONDS": (float, 60),
    "EMAIL_MAX_TRIES": (int, 20),
    "EMAIL_RETRY_SECONDS": (int, 900),  # SQS's longest message delay: a failed send's first wait
}
# Replicate's API; PROCESSING_API_URL points the worker at another service that speaks it (the local reference one).
REPLICATE_API_URL = "https://api.replicate.com"


class ConfigError(RuntimeError):
    """A required setting is missing or has a value the service cannot use."""


@dataclass(frozen=True)
class DatabaseSettings:
    """Where and how to reach PostgreSQL, parsed from a libpq-style URL."""

    host: str
    port: int
    user: str
    password: Optional[str]
    database: str
    sslmode: str = "prefer"
    sslrootcert: Optional[str] = None
    channel_binding: str = "prefer"

    @classmethod
    def from_url(cls, url: str) -> "DatabaseSettings":
        """Parse `postgresql://user:pass@host:port/db?sslmode=...` with libpq's meanings."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise ConfigError("DATABASE_URL must start with postgresql://")
        if not parts.hostname or not parts.username:
            raise ConfigError("DATABASE_URL must name a user and a host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        sslrootcert = query.get("sslrootcert")
        # libpq 16: the system's authorities vouch for every public name, so anything short of checking the host
        # name against the certificate would accept any of them; `system` therefore means verify-full.
        sslmode = query.get("sslmode", "verify-full" if sslrootcert == "system" else "prefer")
        if sslmode not in SSL_MODES:
            raise ConfigError(f"DATABASE_URL has an unknown sslmode {sslmode!r}")
        if sslrootcert == "system" and sslmode != "verify-full":
            raise ConfigError(f"DATABASE_URL has sslrootcert=system with the weaker sslmode {sslmode!r}: "
                              "use sslmode=verify-full, or leave sslmode out")
        if sslmode == "verify-ca" and not sslrootcert:
            # libpq refuses this too: the system's authorities would be trusted without the host name being
            # checked, and anyone who owns a domain gets a certificate they vouch for.
            raise ConfigError("DATABASE_URL has sslmode=verify-ca without sslrootcert: the system's authorities "
                              "vouch for any public name, so name the CA file in sslrootcert, or use "
                              "sslmode=verify-full")
        channel_binding = query.get("channel_binding", "prefer")
        if channel_binding not in CHANNEL_BINDING_MODES:
            raise ConfigError(f"DATABASE_URL has an unknown channel_binding {channel_binding!r}")
        if channel_binding == "require" and sslmode in ("disable", "allow", "prefer"):
            raise ConfigError("DATABASE_URL asks for channel_binding=require without sslmode=require or stricter")
        try:
            port = parts.port or 5432
        except ValueError as exc:
            raise ConfigError("DATABASE_URL has an invalid port") from exc
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username),
            password=unquote(parts.password) if parts.password is not None else None,
            database=unquote(parts.path.lstrip("/")) or unquote(parts.username),
            sslmode=sslmode,
            sslrootcert=sslrootcert,
            channel_binding=channel_binding,
        )


@dataclass(frozen=True)
class RateLimit:
    """At most `count` creates per `seconds`, a sliding window."""

    count: int
    seconds: int

    @classmethod
    def parse(cls, name: str, raw: Optional[str]) -> Optional["RateLimit"]:
        """`N/SECONDS` (e.g. `20/600`); unset or empty means no limit."""
        if raw is None or raw.strip() == "":
            return None
        match = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", raw)
        count, seconds = (_parsed(match[1], int), _parsed(match[2], int)) if match else (None, None)
        if not (_in_range(count, int, RATE_LIMIT_COUNT_MAX) and _in_range(seconds, int, TEN_YEARS_SECONDS)):
            raise ConfigError(f"{name} must be N/SECONDS with N from 1 to {RATE_LIMIT_COUNT_MAX} and SECONDS from 1 "
                              f"to {TEN_YEARS_SECONDS} (e.g. 20/600), got {raw!r}")
        return cls(count=count, seconds=seconds)


@dataclass(frozen=True)
class Settings:
    """Everything the functions need to know about their environment."""

    database_url: str
    r2_endpoint_url: str
    r2_access_key_id: str
    r2_secret_access_key: str
    r2_bucket: str
    # Exact origins (scheme://host[:port]) whose pages may call the API and PUT to the bucket.
    allowed_origins: Tuple[str, ...]
    posthog_api_key: Optional[str] = None
    # Without it, whoever reads the table could test a guessed email or key against the digests: see domain.digest.
    digest_secret: str = ""
    posthog_host: str = "https://us.i.posthog.com"
    analytics_budget_seconds: float = 1.0
    max_upload_bytes: int = 20 * MIB
    upload_url_ttl_seconds: int = 900
    db_timeout_seconds: float = 5.0
    storage_timeout_seconds: float = 3.0
    abandoned_after_seconds: int = 24 * 3600
    rate_limit_per_ip: Optional[RateLimit] = None
    rate_limit_per_email: Optional[RateLimit] = None
    # How long a finished (confirmed or expired) job keeps its email before the sweep clears it.
    email_retention_days: int = 30
    # What is deployed and where: set by `make package` (VERSION from `git describe`, STAGE the Chalice stage).
    version: str = "dev"
    stage: str = "dev"
    # Secrets from SSM are re-read after this long (and at once when a credential is refused).
    secrets_max_age_seconds: float = 300.0
    # The hand-off to processing: the SQS queue the confirm sends to (empty: no hand-off, for a stack without one).
    jobs_queue_url: str = ""
    # Its name (the worker's trigger and the dead-letter queue `<name>-dead` are registered by it at import).
    jobs_queue_name: str = "three-d-ultra-jobs"
    queue_timeout_seconds: float = 1.0
    # The processing service (Replicate's predictions API): the worker's and the dispatcher's only.
    processing_api_url: str = REPLICATE_API_URL
    processing_api_token: str = ""
    processing_model_version: str = ""
    # How the model takes the photo: `image` (one URL) or `images` (a list of views, as TRELLIS takes them), and
    # the model's other inputs (a JSON object), e.g. {"generate_model": true}.
    processing_image_input: str = "image"
    # Where the worker may fetch outputs from (`host` or `*.suffix`, comma-separated): Replicate's delivery hosts.
    processing_output_hosts: Tuple[str, ...] = ("replicate.delivery", "*.replicate.delivery")
    processing_extra_input: str = "{}"
    processing_timeout_seconds: float = 10.0
    processing_poll_seconds: int = 5
    processing_deadline_seconds: int = 1800
    processing_max_attempts: int = 3
    dispatch_after_seconds: int = 60
    max_result_bytes: int = 100 * MIB
    # How long a finished job keeps its photo, preview and model before the sweep deletes them.
    result_retention_days: int = 30
    # The email a finished job sends (the worker's): off without a sender. Its link's origin is the front end's.
    frontend_url: str = ""
    email_from: str = ""
    # Amazon SES's configuration set (its event destination records bounces and complaints)...
    ses_configuration_set: str = ""
    # ...or an SMTP server instead (the local stack's own).
    smtp_host: str = ""
    smtp_port: int = 25
    email_timeout_seconds: float = 5.0
    email_max_tries: int = 5
    email_retry_seconds: int = 60
    # (setting name, SSM parameter name) of secrets still to be fetched; empty once resolved.
    ssm_parameters: Tuple[Tuple[str, str], ...] = ()

    @property
    def processing_configured(self) -> bool:
        """True when this function may speak to the processing service (the worker's environment names it)."""
        return bool(self.processing_model_version)

    @property
    def email_configured(self) -> bool:
        """True when finished jobs send their email (a sender is set, and the rest was checked at start-up)."""
        return bool(self.email_from)

    @property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings.from_url(self.database_url)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        """Build the settings, naming every missing or unusable variable at once."""
        refs = tuple((name, env[name + SSM_SUFFIX]) for name in SECRET_NAMES
                     if not env.get(name) and env.get(name + SSM_SUFFIX))
        given = {name for name, _ in refs}
        missing = [
            name
            for name in ("DATABASE_URL", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_BUCKET", "DIGEST_SECRET")
            if not env.get(name) and name not in given
        ]
        if not env.get("ALLOWED_ORIGINS") and not env.get("ALLOWED_ORIGIN"):
            missing.append("ALLOWED_ORIGINS")
        endpoint = r2_endpoint(env)
        if not endpoint and "R2_ENDPOINT_URL" not in given:
            missing.append("R2_ENDPOINT_URL (or R2_ACCOUNT_ID)")
        if missing:
            raise ConfigError("Missing required setting(s): " + ", ".join(missing))
        if env.get("DATABASE_URL"):
            DatabaseSettings.from_url(env["DATABASE_URL"])  # fail now, not at the first request
        if env.get("DIGEST_SECRET"):
            check_digest_secret(env["DIGEST_SECRET"])
        url_ttl = _number(env, "UPLOAD_URL_TTL_SECONDS", cls.upload_url_ttl_seconds)
        abandoned_after = _number(env, "ABANDONED_AFTER_SECONDS", cls.abandoned_after_seconds)
        if url_ttl >= abandoned_after:
            # A URL that outlives its job could put an object back after the sweep deleted it.
            raise ConfigError(f"UPLOAD_URL_TTL_SECONDS ({url_ttl}) must be less than ABANDONED_AFTER_SECONDS "
                              f"({abandoned_after})")
        origins = allowed_origins_from_env(env)
        _check_processing(env, given)
        frontend_url = parse_frontend_url(env["FRONTEND_URL"]) if env.get("FRONTEND_URL") else ""
        _check_email(env)
        return cls(
            database_url=env.get("DATABASE_URL", ""),
            r2_endpoint_url=endpoint,
            r2_access_key_id=env.get("R2_ACCESS_KEY_ID", ""),
            r2_secret_access_key=env.get("R2_SECRET_ACCESS_KEY", ""),
            r2_bucket=env["R2_BUCKET"],
            allowed_origins=origins,
            posthog_api_key=env.get("POSTHOG_API_KEY") or None,
            digest_secret=env.get("DIGEST_SECRET", ""),
            posthog_host=env.get("POSTHOG_HOST") or cls.posthog_host,
            analytics_budget_seconds=_number(env, "ANALYTICS_BUDGET_SECONDS", cls.analytics_budget_seconds),
            max_upload_bytes=_number(env, "MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            upload_url_ttl_seconds=url_ttl,
            db_timeout_seconds=_number(env, "DB_TIMEOUT_SECONDS", cls.db_timeout_seconds),
            storage_timeout_seconds=_number(env, "STORAGE_TIMEOUT_SECONDS", cls.storage_timeout_seconds),
            abandoned_after_seconds=abandoned_after,
            rate_limit_per_ip=RateLimit.parse("RATE_LIMIT_PER_IP", env.get("RATE_LIMIT_PER_IP")),
            rate_limit_per_email=RateLimit.parse("RATE_LIMIT_PER_EMAIL", env.get("RATE_LIMIT_PER_EMAIL")),
            email_retention_days=_number(env, "EMAIL_RETENTION_DAYS", cls.email_retention_days),
            secrets_max_age_seconds=_number(env, "SECRETS_MAX_AGE_SECONDS", cls.secrets_max_age_seconds),
            version=env.get("VERSION") or cls.version,
            stage=env.get("STAGE") or cls.stage,
            jobs_queue_url=env.get("JOBS_QUEUE_URL", ""),
            jobs_queue_name=env.get("JOBS_QUEUE_NAME") or cls.jobs_queue_name,
            queue_timeout_seconds=_number(env, "QUEUE_TIMEOUT_SECONDS", cls.queue_timeout_seconds),
            processing_api_url=env.get("PROCESSING_API_URL") or cls.processing_api_url,
            processing_api_token=env.get("PROCESSING_API_TOKEN", ""),
            processing_model_version=env.get("PROCESSING_MODEL_VERSION", ""),
            processing_image_input=env.get("PROCESSING_IMAGE_INPUT") or cls.processing_image_input,
            processing_output_hosts=tuple(host.strip().lower() for host in env["PROCESSING_OUTPUT_HOSTS"].split(",")
                                          if host.strip()) if env.get("PROCESSING_OUTPUT_HOSTS")
            else cls.processing_output_hosts,
            processing_extra_input=env.get("PROCESSING_EXTRA_INPUT") or cls.processing_extra_input,
            processing_timeout_seconds=_number(env, "PROCESSING_TIMEOUT_SECONDS", cls.processing_timeout_seconds),
            processing_poll_seconds=_number(env, "PROCESSING_POLL_SECONDS", cls.processing_poll_seconds),
            processing_deadline_seconds=_number(env, "PROCESSING_DEADLINE_SECONDS", cls.processing_deadline_seconds),
            processing_max_attempts=_number(env, "PROCESSING_MAX_ATTEMPTS", cls.processing_max_attempts),
            dispatch_after_seconds=_number(env, "DISPATCH_AFTER_SECONDS", cls.dispatch_after_seconds),
            max_result_bytes=_number(env, "MAX_RESULT_BYTES", cls.max_result_bytes),
            result_retention_days=_number(env, "RESULT_RETENTION_DAYS", cls.result_retention_days),
            frontend_url=frontend_url,
            email_from=env.get("EMAIL_FROM", "").strip(),
            ses_configuration_set=env.get("SES_CONFIGURATION_SET", ""),
            smtp_host=env.get("SMTP_HOST", ""),
            smtp_port=_number(env, "SMTP_PORT", cls.smtp_port),
            email_timeout_seconds=_number(env, "EMAIL_TIMEOUT_SECONDS", cls.email_timeout_seconds),
            email_max_tries=_number(env, "EMAIL_MAX_TRIES", cls.email_max_tries),
            email_retry_seconds=_number(env, "EMAIL_RETRY_SECONDS", cls.email_retry_seconds),
            ssm_parameters=refs,
        )

    def with_secrets(self, fetch: Callable[[list], dict]) -> "Settings":
        """These settings with every SSM-named secret filled in by `fetch(parameter names) -> {name: value}`."""
        if not self.ssm_parameters:
            return self
        values = fetch([parameter for _, parameter in self.ssm_parameters])
        absent = [parameter for _, parameter in self.ssm_parameters if parameter not in values]
        if absent:
            raise ConfigError("SSM parameter(s) not found: " + ", ".join(absent))
        resolved = {name.lower(): values[parameter] for name, parameter in self.ssm_parameters}
        settings = replace(self, **resolved, ssm_parameters=())
        settings.database  # a bad URL from SSM fails here, with its reason
        check_digest_secret(settings.digest_secret)
        return settings


def _check_processing(env: Mapping[str, str], given: set) -> None:
    """The processing settings come together: a worker with a model and no token (or no queue to poll through)
    would fail every job, so start-up stops naming what is missing."""
    named = [name for name in ("PROCESSING_MODEL_VERSION", "PROCESSING_API_TOKEN")
             if env.get(name) or name in given]
    if not named:
        return
    missing = [name for name in ("PROCESSING_MODEL_VERSION", "PROCESSING_API_TOKEN", "JOBS_QUEUE_URL")
               if not env.get(name) and name not in given]
    if missing:
        raise ConfigError("The processing service needs: " + ", ".join(missing))
    url = env.get("PROCESSING_API_URL") or REPLICATE_API_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"PROCESSING_API_URL must be an http(s) URL, got {url!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost"):
        # The token travels in every request.
        raise ConfigError("PROCESSING_API_URL must use https (plain http only on 127.0.0.1 or localhost)")
    if (env.get("PROCESSING_IMAGE_INPUT") or "image") not in ("image", "images"):
        raise ConfigError(f"PROCESSING_IMAGE_INPUT must be image or images, got {env['PROCESSING_IMAGE_INPUT']!r}")
    try:
        extra = json.loads(env.get("PROCESSING_EXTRA_INPUT") or "{}")
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise ConfigError("PROCESSING_EXTRA_INPUT must be a JSON object (the model's other inputs)")
    if _number(env, "PROCESSING_DEADLINE_SECONDS", 1800) <= 2 * _number(env, "PROCESSING_POLL_SECONDS", 5):
        raise ConfigError("PROCESSING_DEADLINE_SECONDS must be more than twice PROCESSING_POLL_SECONDS")


def _check_email(env: Mapping[str, str]) -> None:
    """The email settings come together: a sender, the link's origin and one way to send (SES's configuration set
    or an SMTP server, never both). Any one of them set without the others stops start-up, naming what is missing:
    a worker that could not send would let every email run out of tries."""
    if not any(env.get(name) for name in ("EMAIL_FROM", "SES_CONFIGURATION_SET", "SMTP_HOST")):
        return
    if env.get("SES_CONFIGURATION_SET") and env.get("SMTP_HOST"):
        raise ConfigError("SES_CONFIGURATION_SET and SMTP_HOST name two ways to send email: set one")
    missing = [name for name in ("EMAIL_FROM", "FRONTEND_URL") if not env.get(name)]
    if not env.get("SES_CONFIGURATION_SET") and not env.get("SMTP_HOST"):
        missing.append("SES_CONFIGURATION_SET (or SMTP_HOST)")
    if missing:
        raise ConfigError("The email needs: " + ", ".join(missing))
    sender = env["EMAIL_FROM"].strip()
    _, address = parseaddr(sender)
    local, at, domain = address.rpartition("@")
    if not (local and at and "." in domain) or any(ch.isspace() for ch in address):
        raise ConfigError(f"EMAIL_FROM must be an address such as '3D Ultra <no-reply@3d-ultra.example>', "
                          f"got {sender!r}")


def parse_frontend_url(raw: str) -> str:
    """The front end's public URL (the emailed links open there): http(s)://host[:port][/path], nothing after
    it, no trailing slash; plain http only on 127.0.0.1 or localhost (the link carries a credential)."""
    url = raw.strip()
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"FRONTEND_URL has an invalid port: {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"FRONTEND_URL must be an http(s) URL, got {raw!r}")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment or url.endswith(
            ("?", "#", "/")):
        raise ConfigError(f"FRONTEND_URL must be scheme://host[:port][/path] with no trailing slash, query or "
                          f"fragment, got {raw!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"FRONTEND_URL must use https (plain http only on 127.0.0.1 or localhost), got {raw!r}")
    return url


def check_digest_secret(value: str) -> None:
    """Refuse a digest secret short enough to guess (the value itself is never put in the message)."""
    if len(value) < MIN_DIGEST_SECRET_LENGTH:
        raise ConfigError(f"DIGEST_SECRET must be at least {MIN_DIGEST_SECRET_LENGTH} characters, got {len(value)}")


def parse_origins(raw: str, *, name: str = "ALLOWED_ORIGINS") -> Tuple[str, ...]:
    """A comma-separated list of exact origins, each `scheme://host[:port]` with nothing after it.

    Browsers send the Origin header in exactly that form, and the API compares it character for character: a
    path, a trailing slash, a wildcard or an upper-case host would never match, so each is refused here, named.
    """
    origins = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        parts = urlsplit(item)
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{name} has an origin with an invalid port: {item!r}") from None
        if "*" in item:
            raise ConfigError(f"{name} lists exact origins, no wildcards: {item!r}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{name} has an origin that is not http(s)://host[:port]: {item!r}")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"{name} has an origin with credentials in it: {item!r}")
        if parts.path or parts.query or parts.fragment or item.endswith(("?", "#")):
            raise ConfigError(f"{name} has an origin with a path or a trailing slash (origins have none): {item!r}")
        if port == {"http": 80, "https": 443}[parts.scheme]:
            raise ConfigError(f"{name} has an origin with its scheme's default port (browsers omit it): {item!r}")
        expected = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")
        if item != expected:
            raise ConfigError(f"{name} has an origin not in the browser's exact form ({expected!r}): {item!r}")
        if item not in origins:
            origins.append(item)
    if not origins:
        raise ConfigError(f"{name} lists no origin")
    return tuple(origins)


def allowed_origins_from_env(env: Mapping[str, str]) -> Tuple[str, ...]:
    """ALLOWED_ORIGINS, or the single origin of ALLOWED_ORIGIN; setting both with different values is an error."""
    listed = parse_origins(env["ALLOWED_ORIGINS"]) if env.get("ALLOWED_ORIGINS") else ()
    single = parse_origins(env["ALLOWED_ORIGIN"], name="ALLOWED_ORIGIN") if env.get("ALLOWED_ORIGIN") else ()
    if len(single) > 1:
        raise ConfigError("ALLOWED_ORIGIN takes one origin; list several in ALLOWED_ORIGINS")
    if listed and single and single[0] not in listed:
        raise ConfigError("ALLOWED_ORIGIN is not among ALLOWED_ORIGINS: set only ALLOWED_ORIGINS")
    return listed or single


def r2_endpoint(env: Mapping[str, str]) -> str:
    """R2_ENDPOINT_URL, or the endpoint of the Cloudflare account R2_ACCOUNT_ID, or "" if neither is set."""
    if env.get("R2_ENDPOINT_URL"):
        return env["R2_ENDPOINT_URL"]
    return f"https://{env['R2_ACCOUNT_ID']}.r2.cloudflarestorage.com" if env.get("R2_ACCOUNT_ID") else ""


def fetch_ssm_parameters(names: list, client=None) -> dict:
    """Decrypted values of SSM parameters, in one call per ten names (GetParameters' limit)."""
    if client is None:
        import boto3
        from botocore.config import Config

        # An unreachable SSM must fail a request in seconds (it answers 503), not hold it for boto3's minute.
        client = boto3.client("ssm", config=Config(connect_timeout=2, read_timeout=5,
                                                   retries={"max_attempts": 2, "mode": "standard"}))
    values = {}
    for start in range(0, len(names), 10):
        response = client.get_parameters(Names=names[start:start + 10], WithDecryption=True)
        values.update({p["Name"]: p["Value"] for p in response["Parameters"]})
    return values


def _number(env: Mapping[str, str], name: str, default):
    """The numeric setting `name` (see NUMERIC_SETTINGS), or `default` when it is unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    kind, largest = NUMERIC_SETTINGS[name]
    value = _parsed(raw, kind)
    if not _in_range(value, kind, largest):
        whole = "whole " if kind is int else ""
        raise ConfigError(f"{name} must be a positive {whole}number no greater than {largest}, got {raw!r}")
    return value


def _parsed(raw: str, kind: type):
    """`raw` as a `kind`, or None when it is not one (or has more digits than Python converts)."""
    try:
        return kind(raw)
    except ValueError:
        return None


def _in_range(value, kind: type, largest) -> bool:
    """A finite `kind` above 0 and at most `largest`: nan fails every comparison and infinity exceeds any ceiling,
    and the comparisons come first so that a huge integer never reaches isfinite (which would overflow)."""
    return isinstance(value, kind) and 0 < value <= largest and math.isfinite(value)
