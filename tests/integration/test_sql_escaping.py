"""render()'s escaping, proved against the real server: every value drawn by hypothesis comes back exactly, from
`SELECT` and from `INSERT ... RETURNING`, directly and through a transaction-mode pooler."""

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from chalicelib.config import DatabaseSettings
from chalicelib.db import Database
from tests.stack_fixtures import pooler_for

# Hypothesis keeps caches in .hypothesis/ under the working directory; runtime data stays outside the project
# (chalice local's reloader restarts on any file written there).
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "3d-ultra-hypothesis")
EXAMPLES = 2000
# Pieces that mean something to SQL's lexer, mixed into text drawn from every Unicode plane (no NUL, which
# PostgreSQL text cannot hold, and no lone surrogates, which UTF-8 cannot encode).
SQL_PIECES = ["'", "''", "\\", "\\'", '"', "$$", "$tag$", "$1", "--", "/*", "*/", ";", ":v", "::", "E'", "\n", "\r"]
characters = st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",))
texts = st.lists(st.one_of(st.text(characters, max_size=8), st.sampled_from(SQL_PIECES)), max_size=12).map("".join)
integers = st.integers(min_value=-2 ** 63, max_value=2 ** 63 - 1)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
moments = st.builds(lambda moment, offset: moment.replace(tzinfo=timezone(offset)),
                    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)), offsets)
rows = st.tuples(texts, integers, st.booleans(), st.none(), moments)


@pytest.fixture(scope="module")
def pooler(local_stack):
    with pooler_for(local_stack, pool_size=2) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def table(db):
    db.run("CREATE TABLE escaping_roundtrip (id bigserial PRIMARY KEY, t text, i bigint, b boolean, n text,"
           " d timestamptz)")
    yield "escaping_roundtrip"
    db.run("DROP TABLE escaping_roundtrip")


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"])
def test_every_value_comes_back_exactly_from_select_and_insert_returning(route, local_stack, pooler, table):
    url = local_stack.env["DATABASE_URL"] if route == "direct" else pooler.url()
    database = Database(DatabaseSettings.from_url(url), max_open=1)
    seen = {"text": set(), "integer": set(), "boolean": set(), "none": 0, "datetime": set(), "examples": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(rows)
    def roundtrip(row):
        t, i, b, n, d = row
        selected = database.run("SELECT :t, :i, :b, :n, :d", t=t, i=i, b=b, n=n, d=d)
        returned = database.run(f"INSERT INTO {table} (t, i, b, n, d) VALUES (:t, :i, :b, :n, :d)"
                                " RETURNING t, i, b, n, d", t=t, i=i, b=b, n=n, d=d)
        assert selected == [[t, i, b, n, d]]
        assert returned == [[t, i, b, n, d]]
        seen["examples"] += 1
        seen["text"].add(t)
        seen["integer"].add(i)
        seen["boolean"].add(b)
        seen["none"] += 1
        seen["datetime"].add(d)

    try:
        roundtrip()
    finally:
        database.close()

    planes = {ord(c) >> 16 for text in seen["text"] for c in text}
    print(f"\n{route}: {seen['examples']} examples, each with one value of every family; distinct values: "
          f"text {len(seen['text'])} (Unicode planes {sorted(planes)}), integers {len(seen['integer'])}, "
          f"booleans {len(seen['boolean'])}, None {seen['none']}, datetimes {len(seen['datetime'])}")
    assert seen["examples"] >= EXAMPLES
    assert seen["boolean"] == {True, False}


BACKSLASHED = ["\\');SELECT current_user;--", "\\", "a\\'b", "\\\\'", "C:\\path\\to\\file", "\\x41", "E'\\n'"]


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"])
def test_values_come_back_exactly_after_standard_conforming_strings_is_turned_off_on_an_open_connection(
        route, local_stack, pooler):
    url = local_stack.env["DATABASE_URL"] if route == "direct" else pooler.url()
    database = Database(DatabaseSettings.from_url(url), max_open=1)
    try:
        assert database.run("SHOW standard_conforming_strings") == [["on"]]
        database.run("SET standard_conforming_strings = off")
        assert database.run("SHOW standard_conforming_strings") == [["off"]]

        for value in BACKSLASHED:
            assert database.run("SELECT :v", v=value) == [[value]]
        assert database.run("SELECT :b", b=b"\x00\\\xff") == [[b"\x00\\\xff"]]
        assert database.run("SHOW standard_conforming_strings") == [["off"]]  # still the same session's setting
    finally:
        database.close()


def test_the_server_reads_a_dollar_quote_tag_beyond_ascii_as_render_does(db):
    # render refuses a placeholder inside `$é$ ... $é$` because the server reads it as a quoted body, not code.
    assert db.run("SELECT $é$ a ' b $é$, $_ü1$'$_ü1$") == [[" a ' b ", "'"]]
