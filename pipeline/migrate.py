"""Apply the SQL files in ``sql/`` in name order, once each.

``shop.schema_migrations`` records each applied file with a checksum. Running
the migration again applies only new files, and a file changed after it was
applied is an error: add a new file instead of editing an applied one.

Usage::

    python -m pipeline.migrate            # against DATABASE_URL
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path

import psycopg2

from pipeline.settings import SettingsError, get_settings, redact_url

__all__ = ["MigrationError", "migrate", "SQL_DIR"]

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Any constant works: it only has to be the same for every migrating process.
MIGRATION_LOCK_ID = 4_172_025

BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TABLE IF NOT EXISTS shop.schema_migrations (
    filename   text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """A migration could not be applied. The message names the file and the reason."""


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def migrate(database_url: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply the files of ``sql_dir`` not yet recorded; return their names.

    Each file runs in its own transaction together with its bookkeeping row,
    so a failing file leaves nothing half applied. A PostgreSQL advisory lock
    keeps two processes from migrating at the same time.

    Raises
    ------
    MigrationError
        When an applied file has changed or a file fails.
    """
    files = sorted(sql_dir.glob("*.sql"))
    applied_now: list[str] = []
    connection = psycopg2.connect(database_url, connect_timeout=10)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        connection.commit()
        with connection, connection.cursor() as cursor:
            cursor.execute(BOOKKEEPING)
            cursor.execute("SELECT filename, checksum FROM shop.schema_migrations")
            applied = dict(cursor.fetchall())

        for path in files:
            checksum = _checksum(path)
            if path.name in applied:
                if applied[path.name] != checksum:
                    raise MigrationError(
                        f"sql/{path.name} changed after it was applied to this database. "
                        "Restore the file and put the change in a new, later file."
                    )
                continue
            try:
                with connection, connection.cursor() as cursor:
                    cursor.execute(path.read_text())
                    cursor.execute(
                        "INSERT INTO shop.schema_migrations (filename, checksum) VALUES (%s, %s)",
                        (path.name, checksum),
                    )
            except psycopg2.Error as exc:
                raise MigrationError(f"sql/{path.name} failed: {exc}".strip()) from exc
            logger.info("applied sql/%s", path.name)
            applied_now.append(path.name)
    finally:
        connection.close()
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.migrate",
        description="Apply the schema files in sql/ to DATABASE_URL; safe to run again.",
    )
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        settings = get_settings()
        applied = migrate(settings.database_url)
    except SettingsError as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return 2
    except psycopg2.OperationalError as exc:
        print(
            f"Could not connect to PostgreSQL at {redact_url(settings.database_url)}: "
            f"{str(exc).strip()}. Start the local stack with `python -m pipeline.stack up` "
            "or set DATABASE_URL.",
            file=sys.stderr,
        )
        return 1
    except MigrationError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(f"Applied {len(applied)} new file(s): {', '.join(applied) or 'none, schema is current'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
