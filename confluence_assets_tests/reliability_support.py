"""Helpers of the reliability tests (issue 8): row-for-row database comparison, a concurrent reader that
watches the live chunk invariants while a sync runs (or dies), and database connection killers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

# confluence_pages columns compared row for row (created_at/updated_at are wall-clock bookkeeping).
PAGE_COLUMNS = (
    "page_id, source_id, space_key, title, version, indexed_version, last_modified, path, metadata, is_deleted"
)
# archon_crawled_pages columns compared row for row (id and created_at are the database's own).
CHUNK_COLUMNS = (
    "url, chunk_number, content, metadata, source_id, embedding_1536::text, embedding_model, embedding_dimension"
)


@dataclass
class Comparison:
    pages: int = 0
    chunks: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.pages + self.chunks


def _rows(url: str, query: str, params: tuple) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def compare_databases(disturbed_url: str, reference_url: str, space_key: str) -> Comparison:
    """Compare what two databases hold for a space: pages, chunk rows with their embeddings, the
    watermark, and empty staging in both. Returns the row counts compared and the differences."""
    source_id = f"confluence_{space_key}"
    out = Comparison()
    pages_q = f"SELECT {PAGE_COLUMNS} FROM confluence_pages WHERE source_id = %s ORDER BY page_id"  # noqa: S608
    chunks_q = (
        f"SELECT {CHUNK_COLUMNS} FROM archon_crawled_pages WHERE source_id = %s "  # noqa: S608 - constant columns
        "ORDER BY url, chunk_number"
    )
    for name, query in (("confluence_pages", pages_q), ("archon_crawled_pages", chunks_q)):
        a, b = _rows(disturbed_url, query, (source_id,)), _rows(reference_url, query, (source_id,))
        if name == "confluence_pages":
            out.pages = len(b)
        else:
            out.chunks = len(b)
        if a != b:
            out.differences.append(f"{name}: {len(a)} vs {len(b)} rows, {_first_difference(a, b)}")
    for url, label in ((disturbed_url, "disturbed"), (reference_url, "reference")):
        staged = _rows(url, "SELECT count(*) FROM confluence_sync_staged_pages WHERE source_id = %s", (source_id,))
        chunks = _rows(url, "SELECT count(*) FROM confluence_sync_staged_chunks WHERE source_id = %s", (source_id,))
        if staged[0][0] or chunks[0][0]:
            out.differences.append(f"{label}: staging not empty ({staged[0][0]} pages, {chunks[0][0]} chunks)")
    wm = "SELECT metadata->>'last_sync_timestamp' FROM archon_sources WHERE source_id = %s"
    a, b = _rows(disturbed_url, wm, (source_id,)), _rows(reference_url, wm, (source_id,))
    if a != b:
        out.differences.append(f"watermark: {a} vs {b}")
    return out


def _first_difference(a: list[tuple], b: list[tuple]) -> str:
    """Where the first differing row differs: its key, the columns, and for JSON the keys that differ."""
    only_a, only_b = [r for r in a if r not in b], [r for r in b if r not in a]
    if not only_a or not only_b:
        return f"{len(only_a)} rows only in the disturbed database, {len(only_b)} only in the reference"
    x, y = only_a[0], next((r for r in only_b if r[0] == only_a[0][0]), only_b[0])
    parts = []
    for i, (u, v) in enumerate(zip(x, y, strict=True)):
        if u != v:
            if isinstance(u, dict) and isinstance(v, dict):
                keys = sorted(k for k in u.keys() | v.keys() if u.get(k) != v.get(k))
                parts.append(f"column {i} keys {keys}: {[(u.get(k), v.get(k)) for k in keys]!r:.300}")
            else:
                parts.append(f"column {i}: {u!r:.100} vs {v!r:.100}")
    return f"{len(only_a)} differ; row {x[0]!r}: " + "; ".join(parts)


class InvariantReader(threading.Thread):
    """Reads the live chunks of a space over and over, each time in one statement (one snapshot), and
    records every violation of: a page that once had chunks still has at least one; a page's chunk
    numbers are 0..n-1 without gaps or duplicates; every chunk is embedded; a page's chunks are all of one
    version, the version confluence_pages says is indexed; a page indexed and live has chunks; a deleted
    page has none. Connection failures (a database restarted or connections killed on purpose) are
    counted and retried, not violations."""

    QUERY = """WITH c AS (
                 SELECT metadata->>'page_id' AS page_id, count(*) AS n, count(DISTINCT chunk_number) AS distinct_n,
                        min(chunk_number) AS lo, max(chunk_number) AS hi,
                        bool_and(embedding_1536 IS NOT NULL) AS embedded,
                        count(DISTINCT metadata->>'version') AS versions, max(metadata->>'version') AS version
                 FROM archon_crawled_pages WHERE source_id = %(sid)s AND metadata ? 'page_id' GROUP BY 1),
               p AS (SELECT page_id, indexed_version, is_deleted FROM confluence_pages WHERE source_id = %(sid)s)
               SELECT coalesce(c.page_id, p.page_id), c.n, c.distinct_n, c.lo, c.hi, c.embedded, c.versions,
                      c.version, p.indexed_version, p.is_deleted
               FROM c FULL JOIN p ON p.page_id = c.page_id
               WHERE c.page_id IS NOT NULL OR (p.indexed_version IS NOT NULL AND NOT p.is_deleted)"""

    def __init__(self, db_url: str, space_key: str, interval: float = 0.01) -> None:
        super().__init__(daemon=True, name="invariant-reader")
        self.db_url = db_url
        self.source_id = f"confluence_{space_key}"
        self.interval = interval
        self.ever: set[str] = set()
        self.violations: list[str] = []
        self.reads = 0
        self.connection_errors = 0
        self._halt = threading.Event()

    def check_once(self, conn: psycopg.Connection) -> None:
        rows = conn.execute(self.QUERY, {"sid": self.source_id}).fetchall()
        present = set()
        for pid, n, distinct, lo, hi, embedded, versions, version, indexed, deleted in rows:
            if n is None:
                self.violations.append(f"page {pid}: indexed (v{indexed}) and live, but no chunks")
                continue
            present.add(pid)
            if not (n == distinct and lo == 0 and hi == n - 1):
                self.violations.append(f"page {pid}: chunk numbers not 0..{n - 1} (min {lo}, max {hi}, {distinct})")
            if not embedded:
                self.violations.append(f"page {pid}: a chunk without embedding")
            if versions != 1:
                self.violations.append(f"page {pid}: chunks of {versions} versions mixed")
            elif deleted:
                self.violations.append(f"page {pid}: deleted, yet its chunks are live")
            elif indexed is not None and str(indexed) != version:
                self.violations.append(f"page {pid}: chunks of v{version}, confluence_pages says v{indexed}")
        for pid in self.ever - present:
            self.violations.append(f"page {pid}: had chunks, now none")
        self.ever |= present
        self.reads += 1

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self._halt.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.db_url, autocommit=True, connect_timeout=5)
                self.check_once(conn)
            except psycopg.OperationalError:
                self.connection_errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.1)
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def __enter__(self) -> InvariantReader:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def terminate_backends(server_url: str, database: str) -> int:
    """Kill every connection to ``database`` (as a failing network or a restarted proxy would)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
