"""The vector indexes of archon_crawled_pages as a user should know them: an ivfflat index built on an
empty or much smaller table (Archon's complete_setup.sql builds its lists = 100 indexes before any row) has
centres drawn without the data, and a search that probes a few lists then misses most neighbours.

When it was built is read from the catalogue, not guessed: the transaction id that wrote the index's
pg_class row (CREATE INDEX or the last REINDEX) against the rows' xmin. Rows newer than the index were
placed in lists computed without them. What that costs is measured too: an ivfflat scan with iterative
scans off returns only the rows of the lists it probes, so one probe near a stored vector shows the size
of its list and the share of its exact 10 nearest in it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

SAMPLE = 10  # stored vectors probed per index
# An index most of whose rows came after it was built has its lists from other (or no) data.
MAX_NEWER_SHARE = 0.5
ARCHON_DIMENSION = 1536  # the only column Archon's server searches (its non-_multi functions)


@dataclass(frozen=True)
class IvfflatIndex:
    name: str
    column: str
    lists: int
    rows: int
    newer_share: float  # share of the rows inserted (or rewritten) after the index was built
    mean_list_rows: float  # rows in the probed list, averaged over SAMPLE stored vectors
    one_probe_recall: float  # recall@10 against exact search of one-probe searches near SAMPLE stored vectors

    @property
    def balanced_list_rows(self) -> float:
        return self.rows / max(self.lists, 1)

    @property
    def skewed(self) -> bool:
        return self.rows >= 10 * self.lists and self.newer_share > MAX_NEWER_SHARE

    @property
    def rebuild(self) -> str:
        return f"REINDEX INDEX CONCURRENTLY {self.name};"


def is_archon_database(conn: psycopg.Connection) -> bool:
    """Archon's own tables are there (its settings table, or its page table of migration 011)."""
    return conn.execute(
        "SELECT to_regclass('archon_settings') IS NOT NULL OR to_regclass('archon_page_metadata') IS NOT NULL"
    ).fetchone()[0]


def ivfflat_indexes(conn: psycopg.Connection) -> list[IvfflatIndex]:
    """Every ivfflat index on an embedding column of archon_crawled_pages, with its list balance."""
    found = conn.execute(
        """SELECT c.oid, c.relname, a.attname, pg_get_indexdef(c.oid)
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = 'archon_crawled_pages'::regclass AND am.amname = 'ivfflat'
           ORDER BY c.relname"""
    ).fetchall()
    out = []
    for oid, name, column, definition in found:
        match = re.search(r"lists\s*=\s*'?(\d+)", definition)
        lists = int(match.group(1)) if match else 100  # pgvector's default
        col = sql.Identifier(column)
        rows, newer = conn.execute(
            sql.SQL(
                """SELECT count(*), count(*) FILTER (WHERE age(c.xmin) < (SELECT age(i.xmin) FROM pg_class i
                                                                       WHERE i.oid = %s))
                   FROM archon_crawled_pages c WHERE c.{} IS NOT NULL"""
            ).format(col),
            (oid,),
        ).fetchone()
        if rows:
            probed, recall = _mean_probed_list(conn, col), _one_probe_recall(conn, col)
            out.append(IvfflatIndex(name, column, lists, rows, newer / rows, probed, recall))
        else:
            out.append(IvfflatIndex(name, column, lists, 0, 0.0, 0.0, 1.0))
    return out


def _one_probe_recall(conn: psycopg.Connection, column: sql.Identifier) -> float:
    """Near each of SAMPLE stored vectors (itself left out), how many of the exact 10 nearest one probe finds."""
    query = sql.SQL(
        """WITH s AS (SELECT id, {col} AS v FROM archon_crawled_pages WHERE {col} IS NOT NULL ORDER BY id LIMIT {n})
           SELECT s.id,
                  ARRAY(SELECT c.id FROM archon_crawled_pages c WHERE c.id <> s.id AND c.{col} IS NOT NULL
                        ORDER BY c.{col} <=> s.v LIMIT 10),
                  ARRAY(SELECT c.id FROM archon_crawled_pages c WHERE c.id <> s.id AND c.{col} IS NOT NULL
                        ORDER BY (c.{col} <=> s.v) + 0 LIMIT 10)
           FROM s"""
    ).format(col=column, n=sql.Literal(SAMPLE))
    with conn.transaction():
        conn.execute("SET LOCAL ivfflat.probes = 1")
        conn.execute("SET LOCAL ivfflat.iterative_scan = off")
        rows = conn.execute(query).fetchall()
    found = [len(set(approx) & set(exact)) / max(len(exact), 1) for _, approx, exact in rows]
    return sum(found) / max(len(found), 1)


def _mean_probed_list(conn: psycopg.Connection, column: sql.Identifier) -> float:
    with conn.transaction():
        conn.execute("SET LOCAL ivfflat.probes = 1")
        conn.execute("SET LOCAL ivfflat.iterative_scan = off")
        conn.execute("SET LOCAL enable_seqscan = off")  # the index scan is what is measured
        sizes = conn.execute(
            sql.SQL(
                """SELECT (SELECT count(*) FROM (SELECT 1 FROM archon_crawled_pages c
                                                 ORDER BY c.{col} <=> s.v LIMIT ALL) x)
                   FROM (SELECT {col} AS v FROM archon_crawled_pages WHERE {col} IS NOT NULL
                         ORDER BY id LIMIT {n}) s"""
            ).format(col=column, n=sql.Literal(SAMPLE))
        ).fetchall()
    return sum(n for (n,) in sizes) / max(len(sizes), 1)
