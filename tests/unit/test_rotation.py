"""Rotated secrets: a refused database password or storage key re-reads SSM and retries that one call, once;
any other refusal stands. Fakes for the driver, the S3 client and SSM; no I/O."""

from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError
from pg8000.exceptions import DatabaseError

import chalicelib.db
import chalicelib.storage
from chalicelib.config import Settings
from chalicelib.deps import Dependencies, RotatingS3Client
from chalicelib.errors import DatabaseUnavailable
from tests.unit.logcapture import records

DIRECT = {"DATABASE_URL": "postgresql://app:one@127.0.0.1/db?sslmode=disable", "R2_ENDPOINT_URL": "http://r2.test",
          "R2_ACCESS_KEY_ID": "AK1", "R2_SECRET_ACCESS_KEY": "SK1", "R2_BUCKET": "uploads", "DIGEST_SECRET": "test digest secret, at least 32 characters",
          "ALLOWED_ORIGIN": "https://app.3d-ultra.com"}
FROM_SSM = {**{k: v for k, v in DIRECT.items() if k not in ("DATABASE_URL", "R2_SECRET_ACCESS_KEY")},
            "DATABASE_URL_SSM_PARAMETER": "/p/db", "R2_SECRET_ACCESS_KEY_SSM_PARAMETER": "/p/r2"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Ssm:
    """SSM as a list of versions: each read returns the newest; `down` makes reads fail."""

    def __init__(self, *passwords, r2=("SK1",)):
        self.passwords, self.r2, self.reads, self.down = list(passwords), list(r2), [], False

    def __call__(self, names):
        self.reads.append(list(names))
        if self.down:
            raise ConnectionError("ssm unreachable")
        return {"/p/db": f"postgresql://app:{self.passwords[-1]}@127.0.0.1/db?sslmode=disable",
                "/p/r2": self.r2[-1]}


def build(env=FROM_SSM, ssm=None):
    clock = Clock()
    return Dependencies(Settings.from_env(env), fetch=ssm, clock=clock), clock


def rotation_logs(caplog):
    return [(r.levelname, r.getMessage(), getattr(r, "cause", None), getattr(r, "changed", "<absent>"))
            for r in records(caplog, "chalicelib.deps")]


# The driver

class Server:
    """Accepts one password; records every connection attempt's password."""

    def __init__(self, monkeypatch, accepted, error=None):
        self.accepted, self.attempts, self.error = accepted, [], error
        server = self

        class Connection:
            parameter_statuses = {"standard_conforming_strings": "on"}

            def __init__(self, **kwargs):
                server.attempts.append(kwargs["password"])
                if kwargs["password"] != server.accepted:
                    raise server.error or DatabaseError(
                        {"S": "FATAL", "C": "28P01", "M": "password authentication failed"})

            def run_once(self, sql):
                return [[1]]

            def close(self):
                pass

        monkeypatch.setattr(chalicelib.db, "Connection", Connection)


def test_a_refused_database_password_re_reads_the_secrets_and_connects_once_more(monkeypatch, service_logs):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    server = Server(monkeypatch, accepted="two")
    database = deps.database
    ssm.passwords.append("two")  # rotated after the container read it

    assert database.run("SELECT 1") == [[1]]

    assert server.attempts == ["one", "two"] and len(ssm.reads) == 2
    assert rotation_logs(service_logs)[1:] == [("WARNING", "secrets re-read after a refusal", "database 28P01", True)]


def test_a_new_connection_uses_the_secrets_current_when_it_opens(monkeypatch):
    ssm = Ssm("one")
    deps, clock = build(ssm=ssm)
    server = Server(monkeypatch, accepted="two")
    database = deps.database
    ssm.passwords.append("two")
    clock.now += deps.settings.secrets_max_age_seconds + 1  # past their age: the next need re-reads them

    assert database.run("SELECT 1") == [[1]]
    assert server.attempts == ["two"]


def test_a_password_still_refused_after_the_re_read_is_503_after_two_attempts(monkeypatch, service_logs):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    server = Server(monkeypatch, accepted="two")

    with pytest.raises(DatabaseUnavailable):
        deps.database.run("SELECT 1")

    assert server.attempts == ["one", "one"] and len(ssm.reads) == 2
    assert rotation_logs(service_logs)[1:] == [("WARNING", "secrets re-read after a refusal", "database 28P01", False)]


@pytest.mark.parametrize("error", [
    DatabaseError({"S": "FATAL", "C": "3D000", "M": "database does not exist"}),
    DatabaseError("28P01 as plain text"),
    DatabaseError(),
    ConnectionRefusedError("refused"),
])
def test_other_connection_failures_are_503_without_re_reading_the_secrets(monkeypatch, error):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    server = Server(monkeypatch, accepted="two", error=error)

    with pytest.raises(DatabaseUnavailable):
        deps.database.run("SELECT 1")

    assert server.attempts == ["one"] and len(ssm.reads) == 1


def test_a_server_refused_for_its_settings_is_503_without_re_reading_the_secrets(monkeypatch):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    Server(monkeypatch, accepted="one")
    chalicelib.db.Connection.parameter_statuses = {"standard_conforming_strings": "off"}

    with pytest.raises(DatabaseUnavailable):
        deps.database.run("SELECT 1")

    assert len(ssm.reads) == 1


def test_a_refused_password_given_directly_is_503_after_one_attempt(monkeypatch):
    deps, _ = build(env=DIRECT)
    server = Server(monkeypatch, accepted="two")

    with pytest.raises(DatabaseUnavailable):
        deps.database.run("SELECT 1")

    assert server.attempts == ["one"]


def test_when_ssm_cannot_be_read_after_a_refusal_the_refusal_stands_and_is_logged(monkeypatch, service_logs):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    server = Server(monkeypatch, accepted="two")
    database = deps.database
    ssm.down = True

    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 1")

    assert server.attempts == ["one"]
    assert rotation_logs(service_logs)[-1] == ("ERROR", "re-reading secrets failed: ConnectionError",
                                               "database 28P01", "<absent>")


# Refreshes

def test_refusals_within_a_second_share_one_re_read_and_a_second_later_read_again():
    ssm = Ssm("one")
    deps, clock = build(ssm=ssm)
    deps.secrets

    assert deps.refresh_secrets("first") is True and len(ssm.reads) == 2
    clock.now += 0.999
    assert deps.refresh_secrets("second") is True and len(ssm.reads) == 2
    clock.now += 0.001  # exactly one second after the last re-read
    assert deps.refresh_secrets("third") is True and len(ssm.reads) == 3


def test_the_first_refusal_re_reads_even_at_the_clocks_start():
    ssm = Ssm("one")
    deps, clock = build(ssm=ssm)
    clock.now = 0.0

    assert deps.refresh_secrets("first") is True and len(ssm.reads) == 1


def test_secrets_are_re_read_only_once_older_than_their_maximum_age():
    ssm = Ssm("one")
    deps, clock = build(ssm=ssm)
    clock.now = 0.0
    deps.secrets
    clock.now = deps.settings.secrets_max_age_seconds

    assert deps.secrets.database.password == "one" and len(ssm.reads) == 1
    clock.now += 0.001
    ssm.passwords.append("two")
    assert deps.secrets.database.password == "two" and len(ssm.reads) == 2


# The S3 client

class FakeS3:
    def __init__(self, keys, refuse_code=None):
        self.keys, self.refuse_code, self.calls, self.meta = keys, refuse_code, [], SimpleNamespace(region="auto")

    def get_object(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if self.refuse_code and self.keys["secret_access_key"] != "SK2":
            raise ClientError({"Error": {"Code": self.refuse_code, "Message": "no"}} if self.refuse_code != "-"
                              else {"ResponseMetadata": {"HTTPStatusCode": 403}}, "GetObject")
        return {"keys": self.keys["secret_access_key"]}

    def generate_presigned_url(self, *args, **kwargs):
        return "https://signed"


@pytest.fixture
def clients(monkeypatch):
    built = []

    def s3_client(**keys):
        built.append(FakeS3(keys, refuse_code=clients.refuse_code))
        return built[-1]

    clients = SimpleNamespace(built=built, refuse_code=None)
    monkeypatch.setattr(chalicelib.storage, "s3_client", s3_client)
    return clients


def test_the_client_is_built_from_the_current_secrets_and_rebuilt_only_when_they_change(clients):
    ssm = Ssm("one")
    deps, clock = build(ssm=ssm)
    s3 = RotatingS3Client(deps)

    assert s3.get_object("positional", Bucket="b", Key="k") == {"keys": "SK1"}
    assert s3.get_object(Bucket="b", Key="k2") == {"keys": "SK1"}
    assert [c.keys for c in clients.built] == [{"endpoint_url": "http://r2.test", "access_key_id": "AK1",
                                                "secret_access_key": "SK1", "timeout": 3.0}]
    assert clients.built[0].calls == [(("positional",), {"Bucket": "b", "Key": "k"}), ((), {"Bucket": "b", "Key": "k2"})]
    ssm.r2.append("SK2")
    clock.now += deps.settings.secrets_max_age_seconds + 1
    assert s3.get_object(Bucket="b", Key="k3") == {"keys": "SK2"} and len(clients.built) == 2


def test_presigning_and_plain_attributes_come_straight_from_the_client(clients):
    deps, _ = build(ssm=Ssm("one"))
    s3 = RotatingS3Client(deps)

    assert s3.generate_presigned_url == clients.built[0].generate_presigned_url  # the client's own bound method
    assert s3.meta is clients.built[0].meta
    assert s3.get_object != clients.built[0].get_object  # requests go through the retrying wrapper


@pytest.mark.parametrize("code", ["InvalidAccessKeyId", "SignatureDoesNotMatch", "403"])
def test_a_request_refused_for_its_keys_re_reads_them_and_is_retried_once_with_the_new_ones(
        clients, service_logs, code):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    s3 = RotatingS3Client(deps)
    deps.secrets  # read before the key rotates
    clients.refuse_code = code
    ssm.r2.append("SK2")

    assert s3.get_object("p", Bucket="b", Key="k") == {"keys": "SK2"}

    first, second = clients.built
    assert (first.calls, second.calls) == ([(("p",), {"Bucket": "b", "Key": "k"})], [(("p",), {"Bucket": "b", "Key": "k"})])
    assert rotation_logs(service_logs)[1:] == [("WARNING", "secrets re-read after a refusal", f"storage {code}", True)]


@pytest.mark.parametrize("code", ["AccessDenied", "NoSuchKey", "-"])
def test_other_storage_refusals_reach_the_caller_without_a_re_read(clients, code):
    ssm = Ssm("one")
    deps, _ = build(ssm=ssm)
    clients.refuse_code = code

    with pytest.raises(ClientError):
        RotatingS3Client(deps).get_object(Bucket="b", Key="k")

    assert len(ssm.reads) == 1 and len(clients.built[0].calls) == 1


def test_refused_keys_given_directly_are_not_retried(clients):
    deps, _ = build(env=DIRECT)
    clients.refuse_code = "InvalidAccessKeyId"

    with pytest.raises(ClientError):
        RotatingS3Client(deps).get_object(Bucket="b", Key="k")

    assert len(clients.built[0].calls) == 1
