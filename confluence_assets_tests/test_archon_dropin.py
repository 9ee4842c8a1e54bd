"""Archon's own server on Confluence content (issue 18), on Archon's real schema (../shared/archon: its
complete_setup.sql with migration 011's archon_page_metadata, the embedded server standing in for
pg_trgm and pgcrypto as archon_support.py says) and, the same suite, on a fresh database (the seed
layout). One database per layout for the whole module: built, migrated twice, synced (two spaces), then a
page trashed and reconciled; the tests read it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import dagster as dg
import psycopg
import pytest
from psycopg.types.json import Jsonb

from confluence_assets.db import migrations
from confluence_assets.search.pages import read_page
from confluence_assets.search.principal import SERVICE_ACCOUNT
from confluence_assets.sync import checks, indexed_pages
from confluence_assets_tests.archon_support import ARCHON, archon_on_supabase, drop_roles, supabase_roles
from confluence_assets_tests.conftest import _create_database, _drop_database
from confluence_assets_tests.pipeline_support import (
    discover_spaces,
    generated_site,
    page_reconciliation,
    resources_for,
    sandbox_servers,
    sync_space,
)

pytestmark = pytest.mark.skipif(not ARCHON.is_dir(), reason="the team's ../shared/archon is not on this machine")

WEB_SOURCE = "a1b2c3d4e5f60718"  # Archon's source ids of crawls are hashes
WEB_PAGE = uuid.UUID("00000000-0000-4000-8000-000000000001")
WEB_URL = "https://docs.example.com/guide"
CRAWL_SOURCE = "f0e1d2c3b4a59687"  # Archon's web crawl of a Confluence page we sync as well


@dataclass
class Synced:
    layout: str  # "archon" | "seed"
    url: str
    spaces: list[str]
    live: dict[str, set[str]]  # space key -> live page ids in the sandbox
    titles: dict[str, str]
    trashed: str
    crawled: str  # a page whose link Archon's crawler has too (CRAWL_SOURCE)
    restricted: str  # a page with a read restriction: no row Archon's identity-less server could show
    second_migrate: list = field(default_factory=list)
    web_before: str = ""


def _web_rows(conn: psycopg.Connection) -> str:
    """Archon's own rows (a web crawl) as one fingerprint."""
    parts = [
        conn.execute(
            f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t "  # noqa: S608
            "WHERE t.source_id = %s",
            (WEB_SOURCE,),
        ).fetchone()[0]
        for table in ("archon_sources", "archon_crawled_pages", "archon_page_metadata")
    ]
    return "/".join(parts)


def _archon_web_crawl(conn: psycopg.Connection) -> None:
    """One page as Archon's crawler writes it: source, archon_page_metadata row, chunk pointing at it."""
    conn.execute(
        "INSERT INTO archon_sources (source_id, source_url, title, summary, metadata) VALUES (%s, %s, %s, %s, %s)",
        (WEB_SOURCE, WEB_URL, "Example docs", "Docs", Jsonb({"knowledge_type": "technical"})),
    )
    conn.execute(
        """INSERT INTO archon_page_metadata (id, source_id, url, full_content, section_title, word_count, char_count,
             chunk_count) VALUES (%s, %s, %s, 'zeppelin hangar guide', 'Guide', 3, 21, 1)""",
        (WEB_PAGE, WEB_SOURCE, WEB_URL),
    )
    meta = {"url": WEB_URL, "title": "Guide", "source_id": WEB_SOURCE, "knowledge_type": "technical",
            "chunk_index": 0, "page_id": str(WEB_PAGE)}  # fmt: skip
    conn.execute(
        """INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id, embedding_1536,
             embedding_model, embedding_dimension, page_id)
           VALUES (%s, 0, 'zeppelin hangar guide', %s, %s, array_fill(0.01, ARRAY[1536])::vector, 'm', 1536, %s)""",
        (WEB_URL, Jsonb(meta), WEB_SOURCE, WEB_PAGE),
    )


def _archon_crawled(url: str, link: str) -> None:
    """Archon's crawler fetched a Confluence page by its link before the sync: a chunk 0 (and, where the
    table is, a page row) of another source with the url our rows of that page will want."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO archon_sources (source_id, source_url) VALUES (%s, %s)", (CRAWL_SOURCE, link))
        conn.execute(
            "INSERT INTO archon_crawled_pages (url, chunk_number, content, metadata, source_id)"
            " VALUES (%s, 0, 'crawled', %s, %s)",
            (link, Jsonb({"url": link}), CRAWL_SOURCE),
        )
        if indexed_pages.archon_layout(conn):
            conn.execute(
                """INSERT INTO archon_page_metadata (source_id, url, full_content, word_count, char_count)
                   VALUES (%s, %s, 'crawled', 1, 7)""",
                (CRAWL_SOURCE, link),
            )


@pytest.fixture(scope="module", params=["archon", "seed"])
def synced(request, server_url):
    layout = request.param
    with psycopg.connect(server_url, autocommit=True) as conn:
        roles_before = supabase_roles(conn)
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = _create_database(server_url, name)
    try:
        if layout == "archon":
            archon_on_supabase(url)
        migrations.migrate(url)
        second = migrations.migrate(url)
        web_before = ""
        if layout == "archon":
            with psycopg.connect(url, autocommit=True) as conn:
                _archon_web_crawl(conn)
                web_before = _web_rows(conn)
        site = generated_site(18, spaces=2, pages=8)
        with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
            resources = resources_for(sb, url)
            discover_spaces(instance, resources)
            spaces = sorted(site.spaces)
            leaves = sorted(p.id for p in site.live_pages(spaces[0]) if not site.child_ids(p.id))
            restricted = leaves[-1]  # readable by the sync's account and one other user only
            reader = site.add_user("Restricted Reader", email="reader@example.com").account_id
            site.restrict_page(restricted, [reader, site.default_user.account_id])
            home = f"{sb.conf.url}/spaces/{spaces[1]}/overview"  # the link of the second space's home page
            _archon_crawled(url, home)
            for key in spaces:
                assert sync_space(instance, resources, key).success
            victim = leaves[0]
            site.trash_page(victim)
            result = dg.materialize(
                [page_reconciliation], partition_key=spaces[0], instance=instance, resources=resources
            )
            assert result.success
            live = {key: {p.id for p in site.live_pages(key)} for key in spaces}
            titles = {p.id: p.title for key in spaces for p in site.live_pages(key)}
        with psycopg.connect(url) as conn:
            crawled = conn.execute("SELECT page_id FROM confluence_pages WHERE metadata->>'page_url' = %s", (home,))
            crawled = crawled.fetchone()[0]
        yield Synced(layout, url, spaces, live, titles, victim, crawled, restricted, second, web_before)
    finally:
        _drop_database(server_url, name)
        with psycopg.connect(server_url, autocommit=True) as conn:
            drop_roles(conn, supabase_roles(conn) - roles_before)


def _archon_only(synced: Synced) -> None:
    if synced.layout != "archon":
        pytest.skip("no archon_page_metadata on a fresh database: Archon's pages need its migration 011")


def _a_full_page(conn: psycopg.Connection, space_key: str) -> str:
    """The page of the space with the longest chunk (the home pages are empty)."""
    return conn.execute(
        """SELECT confluence_chunk_page_id(metadata) FROM archon_crawled_pages WHERE source_id = %s
           ORDER BY length(content) DESC, 1 LIMIT 1""",
        (f"confluence_{space_key}",),
    ).fetchone()[0]


def _a_chunk(conn: psycopg.Connection, page_id: str) -> tuple[str, str]:
    """(embedding, content) of the page's first chunk, the embedding as text (a query vector)."""
    return conn.execute(
        """SELECT embedding_1536::text, content FROM archon_crawled_pages
           WHERE confluence_chunk_page_id(metadata) = %s ORDER BY chunk_number LIMIT 1""",
        (page_id,),
    ).fetchone()


def _all_live(synced: Synced) -> set[str]:
    return set().union(*synced.live.values())


def test_migrate_twice_then_nothing_to_apply(synced):
    assert synced.second_migrate == []
    with psycopg.connect(synced.url) as conn:
        assert migrations.pending(synced.url) == []
        archon = indexed_pages.archon_layout(conn)
    assert archon is (synced.layout == "archon")


def test_chunks_carry_the_layout_of_the_database(synced):
    with psycopg.connect(synced.url) as conn:
        rows = conn.execute(
            """SELECT metadata->>'page_id', metadata->>'confluence_page_id', confluence_chunk_page_id(metadata)
               FROM archon_crawled_pages WHERE source_id LIKE 'confluence\\_%'"""
        ).fetchall()
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'archon_crawled_pages'::regclass AND attnum > 0"
            )
        }
        unlinked = (
            {
                r[0]
                for r in conn.execute(
                    """SELECT DISTINCT confluence_chunk_page_id(metadata) FROM archon_crawled_pages
                       WHERE source_id LIKE 'confluence\\_%' AND page_id IS NULL"""
                )
            }
            if "page_id" in columns
            else None
        )
    assert rows and {r[2] for r in rows} == _all_live(synced)
    assert all(r[1] == r[2] for r in rows)  # the Confluence id, in both layouts
    if synced.layout == "archon":
        assert all(r[0] == str(indexed_pages.page_uuid(r[1])) for r in rows)  # Archon's pages mode key
        assert unlinked == {synced.restricted}  # every other chunk points at its archon_page_metadata row
    else:
        assert all(r[0] == r[1] for r in rows)  # the seed layout: page_id is the Confluence id
        assert "page_id" not in columns


def test_every_live_page_has_its_archon_page_row_and_the_trashed_one_none(synced):
    _archon_only(synced)
    with psycopg.connect(synced.url) as conn:
        rows = conn.execute(
            """SELECT m.id, m.metadata->>'confluence_page_id', m.url, m.section_title, m.full_content, m.word_count,
                      m.char_count, m.chunk_count, m.metadata->>'confluence_space_key', m.source_id,
                      (SELECT count(*) FROM archon_crawled_pages c WHERE c.page_id = m.id),
                      p.metadata->>'page_url', (p.metadata->>'content_length')::int
               FROM archon_page_metadata m JOIN confluence_pages p ON p.page_id = m.metadata->>'confluence_page_id'
               WHERE m.source_id LIKE 'confluence\\_%'"""
        ).fetchall()
    by_page = {r[1]: r for r in rows}
    assert set(by_page) == _all_live(synced) - {synced.restricted}  # Archon's server knows no identity
    assert synced.trashed not in by_page
    assert sum(bool(r[4]) for r in rows) >= len(rows) - 2  # the two space home pages are empty
    for pid, row in by_page.items():
        mid, _, link, title, content, words, chars, chunks, space, source, linked, page_url, converted = row
        assert mid == indexed_pages.page_uuid(pid)
        assert link == (page_url if pid != synced.crawled else f"{page_url}#confluence-page-{pid}")
        assert link.startswith("http")
        assert title == synced.titles[pid]
        assert chars == len(content) == converted  # the page's Markdown, whole
        assert words == len(content.split())
        assert chunks == linked > 0
        assert source == f"confluence_{space}" and pid in synced.live[space]


def test_chunks_carry_archon_keys_and_link_to_their_section(synced):
    with psycopg.connect(synced.url) as conn:
        rows = conn.execute(
            """SELECT c.url, c.metadata, c.content, p.metadata->>'page_url', p.title, p.metadata->'labels'
               FROM archon_crawled_pages c
               JOIN confluence_pages p ON p.page_id = confluence_chunk_page_id(c.metadata)"""
        ).fetchall()
        sources = conn.execute(
            """SELECT source_id, summary, metadata->>'knowledge_type' FROM archon_sources
               WHERE source_id LIKE 'confluence%%'"""
        ).fetchall()
    anchored = 0
    for column_url, meta, content, page_url, title, labels in rows:
        url = meta["url"]  # the link agents cite; the url column differs only for a page Archon crawled too
        assert column_url in (url, f"{url}#confluence-page-{synced.crawled}")
        assert url.startswith(page_url) and page_url.startswith("http")
        section = meta["section_title"]
        if "section" not in meta and section and section != title:
            anchored += 1
            # Confluence Cloud's heading anchor: the heading's words joined by "-"
            assert url == page_url + "#" + quote("-".join(section.split()), safe="-._~"), (url, section)
        else:
            assert url == page_url
        assert meta["title"] == title and meta["source_id"] == f"confluence_{meta['space_key']}"
        assert meta["knowledge_type"] == "technical" and meta["tags"] == labels
        assert (meta["word_count"], meta["char_count"]) == (len(content.split()), len(content))
        assert isinstance(meta["chunk_index"], int)
    assert anchored > 0
    assert {s[2] for s in sources} == {"technical"}
    assert all(s[1] for s in sources)  # a description, else the start of the space's first page with text


_PAGE_BY_ID = "SELECT id, url, section_title, full_content, source_id FROM archon_page_metadata WHERE id = %s::uuid"
_PAGE_BY_URL = "SELECT id, url, section_title, full_content, source_id FROM archon_page_metadata WHERE url = %s"


def _archon_pages_mode(conn: psycopg.Connection, matches: list[tuple]) -> list[dict]:
    """Archon's RAGService pages mode, re-enacted in SQL: group the matched chunks (id, url, metadata,
    similarity) by metadata->>'page_id', else by metadata->>'url', and look each group up in
    archon_page_metadata by its UUID id (PostgREST's .eq("id", page_id): the text cast to uuid), a group
    without page_id by its url."""
    groups: dict[tuple[str, str], list[tuple]] = {}
    for row in matches:
        key = ("id", row[2]["page_id"]) if row[2].get("page_id") else ("url", row[2].get("url"))
        groups.setdefault(key, []).append(row)
    pages = []
    for (by, key), rows in groups.items():
        found = conn.execute(_PAGE_BY_ID if by == "id" else _PAGE_BY_URL, (key,)).fetchone()
        if found:
            pages.append({"id": found[0], "url": found[1], "title": found[2], "content": found[3],
                          "source_id": found[4], "chunks": len(rows), "best": max(r[3] for r in rows)})  # fmt: skip
    return sorted(pages, key=lambda p: -p["best"])


ARCHON_FUNCTIONS = {
    "match_archon_crawled_pages": (
        "SELECT id, url, metadata, similarity FROM match_archon_crawled_pages(%s::vector, 10)"
    ),
    "match_archon_crawled_pages_multi": (
        "SELECT id, url, metadata, similarity FROM match_archon_crawled_pages_multi(%s::vector, 1536, 10)"
    ),
    "hybrid_search_archon_crawled_pages": (
        "SELECT id, url, metadata, similarity FROM hybrid_search_archon_crawled_pages(%s::vector, %s, 10)"
    ),
    "hybrid_search_archon_crawled_pages_multi": (
        "SELECT id, url, metadata, similarity FROM hybrid_search_archon_crawled_pages_multi(%s::vector, 1536, %s, 10)"
    ),
}


@pytest.mark.parametrize("function", sorted(ARCHON_FUNCTIONS))
def test_archon_search_functions_and_pages_mode_return_confluence_pages(synced, function):
    with psycopg.connect(synced.url) as conn:
        target = _a_full_page(conn, synced.spaces[1])
        vector, content = _a_chunk(conn, target)
        query = ARCHON_FUNCTIONS[function]
        params = (vector,) if query.count("%s") == 1 else (vector, " ".join(content.split()[:3]))
        matches = conn.execute(query, params).fetchall()
        assert matches, function
        top = matches[0]
        assert top[2]["confluence_page_id"] == target and top[2]["page_title"] == synced.titles[target]
        if synced.layout != "archon":
            return  # the seed layout: no pages mode to serve
        pages = _archon_pages_mode(conn, matches)
    assert pages and pages[0]["id"] == indexed_pages.page_uuid(target)
    assert pages[0]["title"] == synced.titles[target] and content.strip()[:40] in pages[0]["content"]
    assert {p["source_id"] for p in pages} <= {f"confluence_{k}" for k in synced.spaces} | {WEB_SOURCE}


def test_pages_mode_on_an_unfiltered_query_about_a_web_page(synced):
    """The issue's failure: any matched Confluence chunk broke the whole grouping, even for a web query."""
    _archon_only(synced)
    with psycopg.connect(synced.url) as conn:
        vector = conn.execute(
            "SELECT embedding_1536::text FROM archon_crawled_pages WHERE source_id = %s", (WEB_SOURCE,)
        ).fetchone()[0]
        matches = conn.execute(ARCHON_FUNCTIONS["match_archon_crawled_pages"], (vector,)).fetchall()
        pages = _archon_pages_mode(conn, matches)
    assert pages[0]["id"] == WEB_PAGE and pages[0]["url"] == WEB_URL
    assert any(p["source_id"].startswith("confluence_") for p in pages)  # Confluence pages grouped as well


def test_archon_page_listing_and_by_url_lookup_find_the_pages(synced):
    _archon_only(synced)
    space = synced.spaces[0]
    with psycopg.connect(synced.url) as conn:
        # rag_list_pages_for_source / GET /api/pages?source_id=
        listed = conn.execute(
            "SELECT id, url, section_title FROM archon_page_metadata WHERE source_id = %s ORDER BY section_order, url",
            (f"confluence_{space}",),
        ).fetchall()
        assert {r[2] for r in listed} == {synced.titles[p] for p in synced.live[space] - {synced.restricted}}
        # rag_read_full_page / GET /api/pages/by-url?url=
        contents = []
        for page_uuid, link, title in listed:
            found = conn.execute(
                "SELECT id, section_title, full_content FROM archon_page_metadata WHERE url = %s", (link,)
            ).fetchall()
            assert [r[:2] for r in found] == [(page_uuid, title)]
            contents.append(found[0][2])
    assert sum(bool(c) for c in contents) == len(contents) - 1  # every page's Markdown; the home page is empty


def test_a_page_whose_link_archons_crawler_has_too_gets_it_with_a_fragment(synced):
    """Archon's unique keys (url, chunk_number) of chunks and url of pages: our rows of a page Archon also
    crawled take its link with #confluence-page-<id>; Archon's rows stay as they are."""
    with psycopg.connect(synced.url) as conn:
        link = conn.execute(
            "SELECT metadata->>'page_url' FROM confluence_pages WHERE page_id = %s", (synced.crawled,)
        ).fetchone()[0]
        ours = conn.execute(
            """SELECT url, metadata->>'url' FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = %s
               AND chunk_number = 0""",
            (synced.crawled,),
        ).fetchone()
        theirs = conn.execute("SELECT url, content FROM archon_crawled_pages WHERE source_id = %s", (CRAWL_SOURCE,))
        theirs = theirs.fetchall()
        page_row = (
            conn.execute(
                "SELECT url FROM archon_page_metadata WHERE id = %s", (indexed_pages.page_uuid(synced.crawled),)
            ).fetchone()
            if synced.layout == "archon"
            else None
        )
    assert ours == (f"{link}#confluence-page-{synced.crawled}", link)  # metadata.url: still the real link
    assert theirs == [(link, "crawled")]
    if page_row is not None:
        assert page_row[0] == f"{link}#confluence-page-{synced.crawled}"


def test_archon_web_rows_are_unchanged(synced):
    _archon_only(synced)
    with psycopg.connect(synced.url) as conn:
        assert _web_rows(conn) == synced.web_before


def test_our_search_checks_and_full_page_read_work_in_the_layout(synced):
    from confluence_assets.search.hybrid import search

    with psycopg.connect(synced.url, autocommit=True) as conn:
        target = _a_full_page(conn, synced.spaces[0])
        vector, content = _a_chunk(conn, target)
        results = search(conn, " ".join(content.split()[:4]), [float(x) for x in vector.strip("[]").split(",")],
                         as_service_account=True)  # fmt: skip
        assert results and results[0].page_id == target
        page = read_page(conn, target, SERVICE_ACCOUNT)
        assert page is not None and page.chunks > 0 and content.strip()[:40] in page.markdown
        for key in synced.spaces:
            assert checks.pages_without_chunks(conn, key).passed, key
            assert checks.orphan_chunks(conn, key).passed, key
        trashed = conn.execute(
            "SELECT count(*) FROM archon_crawled_pages WHERE confluence_chunk_page_id(metadata) = %s",
            (synced.trashed,),
        ).fetchone()[0]
    assert trashed == 0


def test_doctor_flags_a_dimension_archons_server_cannot_see(synced):
    from confluence_assets.doctor import _archon_checks

    with psycopg.connect(synced.url) as conn:
        at_1536 = [c for c in _archon_checks(conn, 1536) if c.name == "archon"]
        at_768 = [c for c in _archon_checks(conn, 768) if c.name == "archon"]
    if synced.layout == "seed":
        assert at_1536 == at_768 == []  # not an Archon database: nothing to say
        return
    assert [c.ok for c in at_1536] == [True]
    assert [c.ok for c in at_768] == [False] and "invisible to Archon's own tools" in at_768[0].detail


def test_a_space_whose_source_the_user_deleted_stays_deleted_until_restored(migrated_db_url):
    from confluence_assets.sync.spaces import restore_space
    from confluence_assets_tests.pipeline_support import only_space, step_failure_message

    site = generated_site(19, spaces=1, pages=4)
    key = only_space(site)
    site.spaces[key].description = ""  # no description: the summary comes from the first page with text
    with sandbox_servers(site) as sb, dg.DagsterInstance.ephemeral() as instance:
        resources = resources_for(sb, migrated_db_url)
        discover_spaces(instance, resources)
        assert sync_space(instance, resources, key).success
        with psycopg.connect(migrated_db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM archon_sources WHERE source_id = %s", (f"confluence_{key}",))  # in Archon's UI
        discover_spaces(instance, resources)  # the space sensor's refresh
        assert key not in instance.get_dynamic_partitions("confluence_spaces")
        failed = sync_space(instance, resources, key, raise_on_error=False)  # a run requested before
        with psycopg.connect(migrated_db_url) as conn:
            rows = conn.execute(
                "SELECT (SELECT count(*) FROM archon_sources WHERE source_id = %(s)s),"
                " (SELECT count(*) FROM archon_crawled_pages WHERE source_id = %(s)s)",
                {"s": f"confluence_{key}"},
            ).fetchone()
        assert rows == (0, 0)  # not re-created, nothing re-embedded
        assert not failed.success and f"confluence-assets restore-space {key}" in step_failure_message(failed)
        assert "restored" in restore_space(migrated_db_url, key)
        assert "nothing to restore" in restore_space(migrated_db_url, key)
        discover_spaces(instance, resources)
        assert key in instance.get_dynamic_partitions("confluence_spaces")
        assert sync_space(instance, resources, key).success
    with psycopg.connect(migrated_db_url) as conn:
        chunks = conn.execute(
            "SELECT count(*) FROM archon_crawled_pages WHERE source_id = %s", (f"confluence_{key}",)
        ).fetchone()[0]
        summary, first = conn.execute(
            """SELECT s.summary, (SELECT c.content FROM archon_crawled_pages c
                                  JOIN confluence_pages p ON p.page_id = confluence_chunk_page_id(c.metadata)
                                  WHERE c.source_id = s.source_id AND c.chunk_number = 0 AND btrim(c.content) <> ''
                                  ORDER BY length(p.path) - length(replace(p.path, '/', '')), p.page_id LIMIT 1)
               FROM archon_sources s WHERE s.source_id = %s""",
            (f"confluence_{key}",),
        ).fetchone()
    assert chunks > 0
    assert summary and " ".join(first.split()).startswith(summary.removesuffix(" ...")), (summary, first[:80])
