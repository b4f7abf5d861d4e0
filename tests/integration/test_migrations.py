"""The migration runner on the real database."""

from chalicelib.migrate import apply_migrations, available_migrations


def test_applying_migrations_again_changes_nothing_and_all_are_recorded(db):
    assert apply_migrations(db) == []
    recorded = [row[0] for row in db.run("SELECT version FROM schema_migrations ORDER BY version")]
    assert recorded == [version for version, _ in available_migrations()]
