"""Migration runner for ``sql/<version>/<NNN_name>.sql``, compatible with Archon's ``archon_migrations``.

Each pending file runs in one transaction together with its bookkeeping row (version, name, MD5 of the
file). A file whose recorded checksum differs from its current content is refused: applied migrations
are immutable, a change needs a new numbered file. Rows recorded without a checksum (a file applied by
hand, e.g. in Supabase's SQL editor) are re-applied, which is safe because every file is idempotent,
and then get their checksum. Rows that name no file of ours (Archon's own migrations) are ignored.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import psycopg

from confluence_assets import settings

log = logging.getLogger(__name__)

SQL_DIR_ENV = settings.CONFLUENCE_ASSETS_SQL_DIR  # alias of the name in settings
# Serialises concurrent `migrate` calls (webserver, daemon and tests may all start at once).
_ADVISORY_LOCK_KEY = 7_316_284_155_001


class MigrationError(RuntimeError):
    """A migration could not be applied; the message says which file and what to do."""


class ChecksumMismatchError(MigrationError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.md5(self.sql.encode()).hexdigest()  # noqa: S324 - a checksum, as Archon stores it


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    state: str  # "applied" | "pending" | "changed" | "unverified"
    recorded_checksum: str | None


def sql_dir() -> Path:
    """Where the migrations are: $CONFLUENCE_ASSETS_SQL_DIR, inside a wheel, or the source checkout."""
    explicit = settings.env(SQL_DIR_ENV)
    if explicit:
        return Path(explicit)
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / "sql", package_dir.parent / "sql"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no sql/ directory found next to {package_dir}; set {SQL_DIR_ENV}")


def _version_key(version: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in version.split("."))


def _read_exact(path: Path) -> str:
    """The file's text without newline translation, so the checksum is the MD5 of the file's bytes."""
    return path.read_bytes().decode("utf-8")


def discover(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir()
    migrations = [
        Migration(version=f.parent.name, name=f.stem, path=f, sql=_read_exact(f))
        for version_dir in directory.iterdir()
        if version_dir.is_dir()
        for f in version_dir.glob("*.sql")
    ]
    return sorted(migrations, key=lambda m: (_version_key(m.version), m.name))


def _recorded(conn: psycopg.Connection) -> dict[tuple[str, str], str | None]:
    exists = conn.execute("SELECT to_regclass('archon_migrations') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute("SELECT version, migration_name, checksum FROM archon_migrations").fetchall()
    return {(v, n): c for v, n, c in rows}


def status(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[MigrationState]:
    migrations = discover() if migrations is None else migrations
    recorded = _recorded(conn)
    states = []
    for m in migrations:
        key = (m.version, m.name)
        if key not in recorded:
            states.append(MigrationState(m, "pending", None))
        elif recorded[key] is None:
            states.append(MigrationState(m, "unverified", None))
        elif recorded[key] != m.checksum:
            states.append(MigrationState(m, "changed", recorded[key]))
        else:
            states.append(MigrationState(m, "applied", recorded[key]))
    return states


def _refuse_changed(states: list[MigrationState]) -> None:
    changed = [s for s in states if s.state == "changed"]
    if changed:
        lines = [
            f"  {s.migration.version}/{s.migration.name}.sql: recorded {s.recorded_checksum}, "
            f"file now {s.migration.checksum}"
            for s in changed
        ]
        raise ChecksumMismatchError(
            "applied migrations were edited afterwards:\n"
            + "\n".join(lines)
            + "\nRestore the original files and put the change in a new numbered migration."
        )


def migrate(url: str, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration in order; returns those applied (empty when up to date)."""
    migrations = discover(directory)
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_ADVISORY_LOCK_KEY,))
        try:
            states = status(conn, migrations)
            _refuse_changed(states)
            for s in states:
                if s.state == "applied":
                    continue
                _apply(conn, s.migration)
                applied.append(s.migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_ADVISORY_LOCK_KEY,))
    return applied


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    log.info("applying migration %s/%s", m.version, m.name)
    try:
        with conn.transaction():
            conn.execute(m.sql)  # no parameters: psycopg sends the whole file as one simple query
            conn.execute(
                "INSERT INTO archon_migrations (version, migration_name, checksum) VALUES (%s, %s, %s) "
                "ON CONFLICT (version, migration_name) DO UPDATE SET checksum = EXCLUDED.checksum",
                (m.version, m.name, m.checksum),
            )
    except psycopg.Error as exc:
        raise MigrationError(f"{m.version}/{m.name}.sql failed and was rolled back: {exc}") from exc


def pending(url: str) -> list[MigrationState]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [s for s in status(conn) if s.state != "applied"]
