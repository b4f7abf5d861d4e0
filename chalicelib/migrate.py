"""Migration runner shared by the `migrate` Lambda function and the local command."""

from __future__ import annotations

import logging
from pathlib import Path

from pg8000.exceptions import DatabaseError

from . import repository
from .db import Database

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


# Migrations may rewrite a table: the client waits this long for an answer (the API waits 5 s), just under
# the `migrate` function's 300 s limit.
MIGRATE_TIMEOUT_SECONDS = 280.0


class MigrationLocked(RuntimeError):
    """Another migration run holds the lock."""


class MigrationBlocked(RuntimeError):
    """A migration waited too long for a table lock and was rolled back; nothing changed."""


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[str, str]]:
    """(version, sql) of every migration file, in file-name order."""
    return [(path.stem, path.read_text()) for path in sorted(directory.glob("*.sql"))]


def apply_migrations(db: Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply what has not been applied yet, each migration in its own transaction; return the versions applied."""
    try:
        repository.ensure_migrations_table(db)
        before = repository.applied_migrations(db)
        version = None
        for version, sql in available_migrations(directory):
            if version not in before:
                repository.apply_migration(db, version, sql)
    except DatabaseError as exc:
        if repository.is_lock_not_available(exc):
            raise MigrationLocked("another migration run is in progress; try again when it ends") from None
        if repository.is_lock_timeout(exc):
            log.error("migration blocked by a lock held by other sessions; rolled back", extra={"version": version})
            raise MigrationBlocked(
                f"migration {version} waited too long for a table lock held by other sessions and was rolled "
                "back; nothing changed. Find the blocker (pg_stat_activity) or retry when traffic is quieter"
            ) from None
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
    db = Database(DatabaseSettings.from_url(os.environ["DATABASE_URL"]), timeout=MIGRATE_TIMEOUT_SECONDS,
                  application_name="3d-ultra-migrate")
    applied = apply_migrations(db)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    db.close()


if __name__ == "__main__":
    main()
