"""Migration runner shared by the `migrate` Lambda function and the local command."""

from __future__ import annotations

import logging
from pathlib import Path

from pg8000.exceptions import DatabaseError

from . import repository
from .db import Database

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


class MigrationLocked(RuntimeError):
    """Another migration run holds the lock."""


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    """(version, sql) of every migration file, in file-name order."""
    return [(path.stem, path.read_text()) for path in sorted(directory.glob("*.sql"))]


def apply_migrations(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what has not been applied yet, each migration in its own transaction; return the versions applied."""
    try:
        repository.ensure_migrations_table(db)
        before = repository.applied_migrations(db)
        for version, sql in available_migrations(directory):
            if version not in before:
                repository.apply_migration(db, version, sql)
    except DatabaseError as exc:
        if repository.is_lock_not_available(exc):
            raise MigrationLocked("another migration run is in progress; try again when it ends") from None
        raise
    applied = sorted(repository.applied_migrations(db) - before)
    for version in applied:
        log.info("applied migration %s", version)
    return applied


def main() -> None:
    """Apply migrations to the database named by DATABASE_URL."""
    import os

    from .config import DatabaseSettings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    db = Database(DatabaseSettings.from_url(os.environ["DATABASE_URL"]))
    applied = apply_migrations(db)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    db.close()


if __name__ == "__main__":
    main()
