"""When a container re-reads its SSM secrets: first need, after their maximum age, after a refusal (at most
once a second)."""

from chalicelib.config import Settings
from chalicelib.deps import Dependencies

ENV = {"DATABASE_URL_SSM_PARAMETER": "/p/db", "R2_ENDPOINT_URL": "http://127.0.0.1:9", "R2_ACCESS_KEY_ID": "k",
       "R2_SECRET_ACCESS_KEY": "s", "R2_BUCKET": "uploads", "DIGEST_SECRET": "test digest secret, at least 32 characters", "ALLOWED_ORIGIN": "https://app.3d-ultra.com",
       "SECRETS_MAX_AGE_SECONDS": "300"}


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def build(values):
    calls = []

    def fetch(names):
        calls.append(list(names))
        return {"/p/db": values[-1]}

    clock = Clock()
    return Dependencies(Settings.from_env(ENV), fetch=fetch, clock=clock), calls, clock


def test_secrets_are_read_once_then_again_after_their_maximum_age():
    values = ["postgresql://app:one@127.0.0.1/db"]
    deps, calls, clock = build(values)

    assert deps.secrets.database.password == "one"
    clock.now += 299
    values.append("postgresql://app:two@127.0.0.1/db")
    assert deps.secrets.database.password == "one" and len(calls) == 1
    clock.now += 2
    assert deps.secrets.database.password == "two" and len(calls) == 2


def test_a_refusal_re_reads_at_most_once_a_second_and_direct_secrets_never():
    values = ["postgresql://app:one@127.0.0.1/db"]
    deps, calls, clock = build(values)
    deps.secrets
    values.append("postgresql://app:two@127.0.0.1/db")

    assert deps.refresh_secrets("test") is True and deps.secrets.database.password == "two"
    assert deps.refresh_secrets("test") is True and len(calls) == 2  # a second refusal at once: no new read
    clock.now += 1.5
    assert deps.refresh_secrets("test") is True and len(calls) == 3
    direct = Dependencies(Settings.from_env({**ENV, "DATABASE_URL": "postgresql://app:x@127.0.0.1/db"}))
    assert direct.refresh_secrets("test") is False


def test_when_ssm_fails_at_the_scheduled_re_read_the_current_secrets_are_kept_and_ssm_asked_again_later():
    values = ["postgresql://app:one@127.0.0.1/db"]
    deps, calls, clock = build(values)
    deps.secrets
    values.append(None)  # SSM throttling from now on

    def failing(names):
        calls.append(list(names))
        raise TimeoutError("ssm read timed out")

    deps._fetch = failing
    clock.now += 301
    served = [deps.secrets.database.password for _ in range(100)]

    assert served == ["one"] * 100 and len(calls) == 2  # one failed read, not one per request
    clock.now += 29
    deps.secrets
    assert len(calls) == 2
    clock.now += 2
    deps.secrets
    assert len(calls) == 3
