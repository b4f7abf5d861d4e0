"""Statement rendering and connection handling, with fake pg8000 connections."""

import pytest
from pg8000.exceptions import DatabaseError, InterfaceError

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database, render
from chalicelib.errors import DatabaseUnavailable

SETTINGS = DatabaseSettings.from_url("postgresql://u@127.0.0.1/db?sslmode=disable")


def test_values_are_escaped_by_the_driver_and_casts_are_left_alone():
    sql = render("SELECT :a, :b, :c, :d, x::text FROM t WHERE y = :a",
                 {"a": "it's", "b": None, "c": 42, "d": "'; DROP TABLE uploads; --"})

    assert sql == "SELECT 'it''s', NULL, 42, '''; DROP TABLE uploads; --', x::text FROM t WHERE y = 'it''s'"


class FakeConnection:
    opened = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.closed = False
        self.fail_with = None
        self.parameter_statuses = {"standard_conforming_strings": "on"}
        FakeConnection.opened.append(self)

    def run(self, sql):
        if self.fail_with:
            raise self.fail_with
        return [[sql]]

    def close(self):
        self.closed = True


@pytest.fixture
def database():
    FakeConnection.opened = []
    return Database(SETTINGS, connect=FakeConnection, max_idle=2)


def test_the_connection_is_opened_lazily_and_reused(database):
    assert FakeConnection.opened == []

    database.run("SELECT 1")
    database.run("SELECT 2")

    assert len(FakeConnection.opened) == 1
    assert FakeConnection.opened[0].kwargs["ssl_context"] is False


def test_a_stale_connection_is_replaced_once_silently(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = InterfaceError("network error")

    assert database.run("SELECT 2") == [["SELECT 2"]]
    assert len(FakeConnection.opened) == 2 and FakeConnection.opened[0].closed


def test_a_connection_killed_by_the_server_is_replaced(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = DatabaseError({"C": "57P01", "M": "terminating connection"})

    assert database.run("SELECT 2") == [["SELECT 2"]]


def test_a_fresh_connection_that_fails_is_503_not_a_retry_loop(database):
    def refuse(**kwargs):
        raise InterfaceError("Can't create a connection")

    database._connect = refuse

    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 1")


def test_a_statement_error_is_raised_and_the_connection_kept(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = DatabaseError({"C": "23505", "M": "duplicate key"})

    with pytest.raises(DatabaseError):
        database.run("INSERT")
    assert not FakeConnection.opened[0].closed and len(FakeConnection.opened) == 1


def test_connections_do_not_pile_up_beyond_the_idle_limit():
    FakeConnection.opened = []
    database = Database(SETTINGS, connect=FakeConnection, max_idle=2, max_open=5)
    held = [database._acquire()[0] for _ in range(5)]
    for conn in held:
        database._release(conn)

    assert sum(not c.closed for c in FakeConnection.opened) == 2


def test_a_server_that_reads_backslashes_as_escapes_is_refused(database):
    class OldServer(FakeConnection):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parameter_statuses = {"standard_conforming_strings": "off"}

    database._connect = OldServer

    with pytest.raises(DatabaseUnavailable, match="standard_conforming_strings"):
        database.run("SELECT 1")


def test_when_every_idle_connection_died_the_retry_opens_a_fresh_one(database):
    held = [database._acquire()[0] for _ in range(2)]
    for conn in held:
        database._release(conn)
        conn.fail_with = InterfaceError("network error")

    assert database.run("SELECT 3") == [["SELECT 3"]]
    assert len(FakeConnection.opened) == 3 and all(c.closed for c in held)


def test_a_burst_beyond_the_open_limit_waits_then_gives_503_not_a_new_connection():
    FakeConnection.opened = []
    database = Database(SETTINGS, connect=FakeConnection, max_open=2, timeout=0.05)
    held = [database._acquire()[0] for _ in range(2)]

    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 1")
    database._release(held[0])
    assert database.run("SELECT 1") == [["SELECT 1"]]
    assert len(FakeConnection.opened) == 2
