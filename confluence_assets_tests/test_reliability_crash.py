"""Issue 8, crashes: sync runs SIGKILLed at chosen points (inside the chunk swap among them) and at random
moments, re-run, and compared row for row with an undisturbed sync, while a concurrent reader checks that
no live page ever lacks chunks or shows a half-swapped set.

By default a representative subset runs on a 120-page space; with --run-slow the whole matrix runs on
1,000 pages (as bench/reliability.py does, which also prints the figures).
"""

from __future__ import annotations

import psycopg
import pytest

from confluence_assets_tests.crash_matrix import Matrix, Scenario, build_site, full_matrix
from confluence_assets_tests.reliability_support import InvariantReader


def _assert_all_ok(outcomes) -> None:
    for o in outcomes:
        assert o.kills >= 1, f"{o.scenario.name}: the run was not killed"
        assert not o.reader_violations, f"{o.scenario.name}: {o.reader_violations[:3]}"
        assert not o.differences, f"{o.scenario.name}: {o.differences}"
        assert o.pages_compared and o.chunks_compared and o.reader_checks


def test_the_reader_would_see_a_page_without_chunks_or_a_half_swapped_one(migrated_db_url):
    """A negative control: the invariant reader is not blind to any of the states it looks for."""
    vector = "[" + ",".join(["0.1"] * 1536) + "]"

    def chunk(conn, page: str, number: int, version: int) -> None:
        conn.execute(
            "INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_1536) "
            "VALUES (%s, %s, 'text', jsonb_build_object('page_id', %s::text, 'version', %s::int), 'confluence_X', %s)",
            (f"confluence://X/{page}", number, page, version, vector),
        )

    with psycopg.connect(migrated_db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO archon_sources (source_id, source_url, source_display_name, title, metadata) "
            "VALUES ('confluence_X', 'u', 'X', 'X', '{}')"
        )
        for page in ("1", "2", "3", "4", "5"):
            conn.execute(
                "INSERT INTO confluence_pages (page_id, source_id, space_key, title, version, indexed_version, "
                "last_modified, path, metadata) VALUES (%s, 'confluence_X', 'X', %s, 2, 2, now(), %s, '{}')",
                (page, f"Page {page}", f"/{page}"),
            )
        for page, number in (("1", 0), ("1", 1), ("2", 0), ("3", 0), ("3", 1), ("4", 0), ("5", 0)):
            chunk(conn, page, number, 2)
        reader = InvariantReader(migrated_db_url, "X")
        reader.check_once(conn)
        assert not reader.violations and reader.ever == {"1", "2", "3", "4", "5"}
        conn.execute("DELETE FROM archon_crawled_pages WHERE metadata->>'page_id' = '1' AND chunk_number = 0")
        conn.execute("DELETE FROM archon_crawled_pages WHERE metadata->>'page_id' = '2'")
        conn.execute(  # page 3: one chunk of the new version beside one of the old
            "UPDATE archon_crawled_pages SET metadata = metadata || '{\"version\": 3}' "
            "WHERE metadata->>'page_id' = '3' AND chunk_number = 1"
        )
        conn.execute("UPDATE confluence_pages SET indexed_version = 3 WHERE page_id = '4'")  # chunks still v2
        conn.execute("UPDATE confluence_pages SET is_deleted = TRUE WHERE page_id = '5'")  # chunks still live
        conn.execute(  # page 6: indexed and live, never any chunk
            "INSERT INTO confluence_pages (page_id, source_id, space_key, title, version, indexed_version, "
            "last_modified, path, metadata) VALUES ('6', 'confluence_X', 'X', 'Page 6', 1, 1, now(), '/6', '{}')"
        )
        reader.check_once(conn)
    found = "\n".join(reader.violations)
    assert "page 1: chunk numbers" in found
    assert "page 2: had chunks, now none" in found
    assert "page 3: chunks of 2 versions mixed" in found
    assert "page 4: chunks of v2, confluence_pages says v3" in found
    assert "page 5: deleted, yet its chunks are live" in found
    assert "page 6: indexed (v1) and live, but no chunks" in found
    assert "page 2: indexed (v2) and live, but no chunks" in found
    assert len(reader.violations) == 7, reader.violations


REPRESENTATIVE = [
    Scenario("initial", "stage_batch:1"),  # mid-pagination: 100 of 120 pages staged
    Scenario("initial", "chunk_batch:1"),  # between page_metadata and chunk_embeddings: chunks staged only
    Scenario("update", "swap_inside:15"),  # inside a swap that replaces live chunks
    Scenario("update", "complete:1"),  # every page swapped, the watermark not yet moved
]


def test_crash_matrix_representative_subset(server_url, _migrated_template):
    site, space = build_site(120)
    with Matrix(site, space, server_url, _migrated_template) as matrix:
        outcomes = matrix.run_all(REPRESENTATIVE)
    _assert_all_ok(outcomes)
    assert len(outcomes) == len(REPRESENTATIVE)


@pytest.mark.slow
def test_crash_matrix_full_on_1000_pages(server_url, _migrated_template):
    site, space = build_site(1000)
    scenarios = full_matrix(random_kills=6)
    with Matrix(site, space, server_url, _migrated_template) as matrix:
        outcomes = matrix.run_all(scenarios)
    _assert_all_ok(outcomes)
    assert sum(o.scenario.crash_at is not None for o in outcomes) >= 5
    assert any((o.scenario.crash_at or "").startswith("swap_inside") for o in outcomes)
