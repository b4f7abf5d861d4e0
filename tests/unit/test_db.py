"""Statement rendering and connection handling, with fake pg8000 connections."""

import logging

import pytest
from pg8000.exceptions import DatabaseError, InterfaceError

from chalicelib.config import ConfigError, DatabaseSettings
from chalicelib.db import Database, NotSent, UnsafePlaceholder, render
from chalicelib.errors import DatabaseOutcomeUnknown, DatabaseUnavailable
from chalicelib.repository import apply_migration, ensure_migrations_table

SETTINGS = DatabaseSettings.from_url("postgresql://u@127.0.0.1/db?sslmode=disable")


def test_values_are_escaped_parenthesised_and_casts_are_left_alone():
    sql = render("SELECT :a, :b, :c, :d, x::text FROM t WHERE y = :a",
                 {"a": "it's", "b": None, "c": 42, "d": "'; DROP TABLE uploads; --"})

    assert sql == ("SELECT (E'it''s'), (NULL), (42), (E'''; DROP TABLE uploads; --'), x::text FROM t"
                   " WHERE y = (E'it''s')")


def test_a_negative_number_after_a_minus_does_not_become_a_comment():
    assert render("SELECT 5-:n", {"n": -1}) == "SELECT 5-(-1)"


def test_a_string_next_to_another_string_cannot_concatenate_with_it():
    assert render("SELECT :a\n'b'", {"a": "x"}) == "SELECT (E'x')\n'b'"


@pytest.mark.parametrize("sql, where", [
    ("SELECT ':n'", "a string literal"),
    ("SELECT 'a '' :n'", "a string literal"),
    ("SELECT E'\\' :n'", "a string literal"),
    ('SELECT 1 AS ":n"', "a quoted identifier"),
    ("SELECT 1 -- :n\n", "a comment"),
    ("SELECT 1 /* /* nested */ :n */", "a comment"),
    ("DO $$ BEGIN PERFORM :n; END $$", "a dollar-quoted body ($$)"),
    ("DO $body$ BEGIN PERFORM :n; END $body$", "a dollar-quoted body ($body$)"),
    ("DO $é$ BEGIN PERFORM :n; END $é$", "a dollar-quoted body ($é$)"),
    ("DO $_ü1$ BEGIN PERFORM :n; END $_ü1$", "a dollar-quoted body ($_ü1$)"),
    ("SELECT $日本$ :n $日本$", "a dollar-quoted body ($日本$)"),
])
def test_a_placeholder_inside_quotes_comments_or_bodies_is_refused(sql, where):
    with pytest.raises(UnsafePlaceholder, match=where.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")):
        render(sql, {"n": 1})


def test_the_first_character_of_a_statement_is_lexed_like_any_other():
    assert render(":v", {"v": 1}) == "(1)"
    assert render("'\\' || :v", {"v": "x"}) == "'\\' || (E'x')"
    with pytest.raises(UnsafePlaceholder):
        render("$$ :v $$", {"v": 1})


def test_a_dollar_sign_after_a_letter_beyond_ascii_is_part_of_that_name_not_a_dollar_quote():
    # PostgreSQL reads `é$$` as one identifier (a `$` may continue a name), so what follows is code.
    assert render("SELECT é$$ :v", {"v": 1}) == "SELECT é$$ (1)"
    assert render("SELECT €$$ :v", {"v": 1}) == "SELECT €$$ (1)"


def test_colons_that_are_not_placeholders_pass_through_untouched():
    sql = "SELECT '10:30', $1, a$b, arr[1:2], x::int, $tag$ a:b $tag$ FROM t WHERE id = :id"

    assert render(sql, {"id": "x"}) == sql.replace(":id", "(E'x')")


def test_a_missing_value_a_nul_and_an_unknown_type_are_refused_before_anything_is_sent():
    with pytest.raises(KeyError, match=":id"):
        render("SELECT :id", {})
    with pytest.raises(ValueError, match="NUL"):
        render("SELECT :v", {"v": "a\x00b"})
    with pytest.raises(TypeError, match="object"):
        render("SELECT :v", {"v": object()})


def test_the_migration_statements_keep_their_values_outside_the_dollar_quoted_body():
    sent = []

    class Recorder:
        def run(self, statement, **params):
            sent.append(render(statement, params))

    ensure_migrations_table(Recorder())
    apply_migration(Recorder(), "0009_x", "CREATE TABLE x (a text DEFAULT ':not_a_placeholder');")

    body = sent[1][sent[1].index("DO $migration$"):]
    assert "CREATE TABLE x" not in body and "0009_x" not in body
    assert "set_config('migration.sql', (E'CREATE TABLE x (a text DEFAULT '':not_a_placeholder'');')" in sent[1]


def test_an_unknown_channel_binding_is_refused_at_start_up_with_its_name():
    with pytest.raises(ConfigError, match="^DATABASE_URL has an unknown channel_binding 'always'$"):
        DatabaseSettings.from_url("postgresql://u@h/db?sslmode=require&channel_binding=always")


class FakeConnection:
    opened = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.closed = False
        self.fail_with = None
        self.sent = []
        self.parameter_statuses = {"standard_conforming_strings": "on"}
        FakeConnection.opened.append(self)

    def run_once(self, sql):
        if self.fail_with:
            failure, self.fail_with = self.fail_with, None
            if not isinstance(failure, NotSent):
                self.sent.append(sql)
            raise failure
        self.sent.append(sql)
        return [[sql.split("; ", 1)[-1]]]

    def close(self):
        self.closed = True


@pytest.fixture
def database():
    FakeConnection.opened = []
    return Database(SETTINGS, connect=FakeConnection, max_idle=2)


def all_sent():
    return [sql for conn in FakeConnection.opened for sql in conn.sent]


def test_the_connection_is_opened_lazily_and_reused(database):
    assert FakeConnection.opened == []

    database.run("SELECT 1")
    database.run("SELECT 2")

    assert len(FakeConnection.opened) == 1
    assert FakeConnection.opened[0].kwargs["ssl_context"] is False
    assert FakeConnection.opened[0].kwargs["channel_binding"] == "prefer"


def test_each_statement_carries_a_server_timeout_below_the_client_timeout_in_the_same_message():
    FakeConnection.opened = []
    Database(SETTINGS, connect=FakeConnection, timeout=5).run("SELECT :v", v=1)

    assert all_sent() == ["SET LOCAL statement_timeout = 4000; SELECT (1)"]


def test_a_connection_the_server_closed_while_idle_is_replaced_once_silently(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = NotSent("the server closed this idle connection")

    assert database.run("SELECT 2") == [["SELECT 2"]]
    assert len(FakeConnection.opened) == 2 and FakeConnection.opened[0].closed
    assert [sql.endswith("SELECT 2") for sql in all_sent()] == [False, True]


@pytest.mark.parametrize("lost", [InterfaceError("network error"), OSError("timed out")])
def test_a_statement_sent_then_timed_out_or_lost_is_503_and_never_sent_again(database, lost):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = lost

    with pytest.raises(DatabaseOutcomeUnknown) as raised:
        database.run("UPDATE uploads SET confirmed_at = now()")

    assert sum("UPDATE" in sql for sql in all_sent()) == 1
    assert (raised.value.code, raised.value.message) == (
        "SERVICE_UNAVAILABLE", "The service is temporarily unavailable. Please try again in a moment.")
    assert FakeConnection.opened[0].closed
    assert database.run("SELECT 3") == [["SELECT 3"]]


def test_a_connection_that_dies_mid_statement_is_503_without_a_retry(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = DatabaseError({"V": "FATAL", "C": "57P02", "M": "crash shutdown"})

    # Sent, then the connection ended: the statement may have committed, so the use case must treat it as such.
    with pytest.raises(DatabaseOutcomeUnknown):
        database.run("UPDATE t SET x = 1")
    assert sum("UPDATE" in sql for sql in all_sent()) == 1
    assert FakeConnection.opened[0].closed


@pytest.mark.parametrize("code", ["57014", "40P01", "40001", "53300"])
def test_a_statement_the_server_cancelled_or_rolled_back_is_503_and_the_connection_kept(database, code):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = DatabaseError({"V": "ERROR", "C": code, "M": "canceling statement"})

    with pytest.raises(DatabaseUnavailable) as raised:
        database.run("UPDATE t SET x = 1")

    assert type(raised.value) is DatabaseUnavailable  # it rolled back: nothing is owed
    assert sum("UPDATE" in sql for sql in all_sent()) == 1
    assert not FakeConnection.opened[0].closed and len(FakeConnection.opened) == 1


def test_a_fresh_connection_that_fails_is_503_not_a_retry_loop(database):
    def refuse(**kwargs):
        raise InterfaceError("Can't create a connection")

    database._connect = refuse

    with pytest.raises(DatabaseUnavailable):
        database.run("SELECT 1")


def test_a_statement_error_is_raised_and_the_connection_kept(database):
    database.run("SELECT 1")
    FakeConnection.opened[0].fail_with = DatabaseError({"V": "ERROR", "C": "23505", "M": "duplicate key"})

    with pytest.raises(DatabaseError):
        database.run("INSERT")
    assert not FakeConnection.opened[0].closed and len(FakeConnection.opened) == 1


@pytest.mark.parametrize("unexpected", [UnicodeEncodeError("utf-8", "x", 0, 1, "bad"), KeyError("x"),
                                        RuntimeError("driver bug")])
def test_unexpected_driver_errors_more_times_than_there_are_slots_leave_the_pool_whole(unexpected):
    FakeConnection.opened = []
    database = Database(SETTINGS, connect=FakeConnection, max_open=3, max_idle=3, timeout=0.05)

    for _ in range(10):
        conn, _ = database._acquire()
        database._release(conn)
        conn.fail_with = unexpected
        with pytest.raises(type(unexpected)):
            database.run("SELECT 1")

    assert all(conn.closed for conn in FakeConnection.opened)
    assert [database.run(f"SELECT {i}") for i in range(3)] == [[["SELECT 0"]], [["SELECT 1"]], [["SELECT 2"]]]
    held = [database._acquire()[0] for _ in range(3)]
    assert len(held) == 3


def test_connections_do_not_pile_up_beyond_the_idle_limit():
    FakeConnection.opened = []
    database = Database(SETTINGS, connect=FakeConnection, max_idle=2, max_open=5)
    held = [database._acquire()[0] for _ in range(5)]
    for conn in held:
        database._release(conn)

    assert sum(not c.closed for c in FakeConnection.opened) == 2


def test_a_server_that_reads_backslashes_as_escapes_is_refused_with_the_reason_only_in_the_log(database, caplog):
    class OldServer(FakeConnection):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parameter_statuses = {"standard_conforming_strings": "off"}

    database._connect = OldServer

    with caplog.at_level(logging.ERROR), pytest.raises(DatabaseUnavailable) as raised:
        database.run("SELECT 1")
    assert raised.value.message == "The service is temporarily unavailable. Please try again in a moment."
    assert "standard_conforming_strings" in caplog.text
    assert FakeConnection.opened[0].closed


def test_when_every_idle_connection_died_the_retry_opens_a_fresh_one(database):
    held = [database._acquire()[0] for _ in range(2)]
    for conn in held:
        database._release(conn)
        conn.fail_with = NotSent("closed while idle")

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


def test_a_datetime_whose_zone_gives_no_offset_is_sent_as_a_plain_timestamp():
    from datetime import datetime, tzinfo

    class NoOffset(tzinfo):
        def utcoffset(self, moment):
            return None

    assert render("SELECT :v", {"v": datetime(2026, 1, 2, 3, 4, 5, tzinfo=NoOffset())}).endswith("::timestamp)")
