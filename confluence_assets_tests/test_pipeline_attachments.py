"""Attachments and comments through the real pipeline: the sandbox Confluence (real files, the download
endpoint's 302, comments with replies, inline anchors and resolution) and embeddings over HTTP, real
Dagster runs, the embedded PostgreSQL, searched through SearchService."""

from __future__ import annotations

import os

import dagster as dg
import psycopg
import pytest

from confluence_assets import settings
from confluence_assets.db.connection import connect
from confluence_assets.defs.assets import build_assets
from confluence_assets.defs.partitions import SPACES_PARTITIONS_NAME
from confluence_assets.embeddings import Embedder
from confluence_assets.sandbox import Site
from confluence_assets.sandbox.files import GOOD_KINDS, bad_files, good_file
from confluence_assets.search import SearchService
from confluence_assets_tests.pipeline_support import (
    DOWNLOAD,
    MEDIA,
    asset_metadata,
    generated_site,
    only_space,
    resources_for,
    sandbox_servers,
)

# CONFLUENCE_ATTACHMENTS and CONFLUENCE_COMMENTS are on by default; built with both on whatever the environment.
ON = build_assets(settings.load({**os.environ, "CONFLUENCE_ATTACHMENTS": "on", "CONFLUENCE_COMMENTS": "on"}))
SYNC = [ON.changed_pages, ON.page_metadata, ON.page_attachments, ON.page_chunks, ON.chunk_embeddings]


def sync_space(instance: dg.DagsterInstance, resources: dict, key: str) -> dg.ExecuteInJobResult:
    if key not in instance.get_dynamic_partitions(SPACES_PARTITIONS_NAME):
        instance.add_dynamic_partitions(SPACES_PARTITIONS_NAME, [key])
    return dg.materialize(SYNC, partition_key=key, instance=instance, resources=resources)


PHRASES = {
    "pdf": "quasar lantern procurement",
    "docx": "obsidian ferry timetable",
    "pptx": "tangerine glacier roadmap",
    "xlsx": "walrus ledger reconciliation",
    "csv": "saffron turbine inventory",
    "txt": "cobalt meadow checklist",
    "md": "juniper harbor escalation",
    "html": "velvet canyon onboarding",
}
FOOTER = "the pelican rollout needs a second reviewer"
INLINE = "marzipan throttle threshold looks wrong"
RESOLVED = "pumice archive retention was agreed"
REPLY = "hazelnut quorum confirmed by ops"
ANCHOR = "retry budget"


def _search(sb, db_url: str, query: str, *, as_user: str | None = None) -> list:
    embedder = Embedder(model="text-embedding-3-small", dimensions=1536, api_key=sb.emb.api_key, base_url=sb.emb.url)
    with connect(db_url, autocommit=True) as conn:
        service = SearchService(conn, embedder)
        if as_user:
            return list(service.search(query, limit=3, as_user=as_user))
        return list(service.search(query, limit=3, as_service_account=True))


def _chunks(db_url: str, page_id: str) -> list[tuple[str, dict]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT content, metadata FROM archon_crawled_pages WHERE metadata->>'page_id' = %s
               ORDER BY chunk_number""",
            (page_id,),
        ).fetchall()


def _attachments(db_url: str, page_id: str) -> dict[str, tuple]:
    with psycopg.connect(db_url) as conn:
        return {
            name: (status, reason, version)
            for name, status, reason, version in conn.execute(
                "SELECT file_name, status, reason, version FROM confluence_attachments WHERE page_id = %s", (page_id,)
            )
        }


def _found(results: list, page_id: str, phrase: str) -> bool:
    return any(r.page_id == page_id and phrase in r.content for r in results)


@pytest.fixture
def site() -> Site:
    """A small generated space without the corpus' placeholder attachments (their bytes are no real files),
    so that every download counted is one of this file's."""
    site = generated_site(41, pages=6)
    for page in site.live_pages(only_space(site)):
        for att in site.attachments_of(page.id):
            site.remove_attachment(page.id, att.title)
    return site


def _files_page(site: Site, key: str, title: str, kinds=GOOD_KINDS, suffix: str = "") -> tuple[str, dict[str, str]]:
    page = site.create_page(key, title, f"<p>{title} keeps the files of the team.</p>")
    phrases = {}
    for kind in kinds:
        sample = good_file(kind, f"{kind}-notes{suffix}", PHRASES[kind] + suffix)
        site.add_attachment(page.id, sample.filename, data=sample.blob, media_type=sample.media_type)
        phrases[sample.filename] = sample.phrase
    return page.id, phrases


def _discussed_page(site: Site, key: str) -> tuple[str, dict[str, str]]:
    page = site.create_page(key, "Rollout plan", f"<p>The {ANCHOR} is three attempts per minute.</p>")
    footer = site.add_comment(page.id, f"<p>{FOOTER}</p>")
    reply = site.add_comment(page.id, f"<p>{REPLY}</p>", parent_comment_id=footer.id)
    inline = site.add_comment(page.id, f"<p>{INLINE}</p>", inline_anchor=ANCHOR)
    resolved = site.add_comment(page.id, f"<p>{RESOLVED}</p>", inline_anchor="three attempts", resolved=True)
    return page.id, {"footer": footer.id, "reply": reply.id, "inline": inline.id, "resolved": resolved.id}


def test_every_attachment_and_comment_is_found_as_part_of_its_page(migrated_db_url, instance, site):
    key = only_space(site)
    files_page, phrases = _files_page(site, key, "Team files")
    discussed, comment_ids = _discussed_page(site, key)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        result = sync_space(instance, resources, key)
        assert result.success
        assert sb.conf.stats[DOWNLOAD] == len(GOOD_KINDS) and sb.conf.stats[MEDIA] == len(GOOD_KINDS)
        for name, phrase in phrases.items():
            assert _found(_search(sb, migrated_db_url, phrase), files_page, phrase), name
        for phrase in (FOOTER, INLINE, RESOLVED, REPLY):
            assert _found(_search(sb, migrated_db_url, phrase), discussed, phrase), phrase
    meta = asset_metadata(result, "page_attachments")
    assert meta["attachments_listed"] == len(GOOD_KINDS) and meta["attachments_downloaded"] == len(GOOD_KINDS)
    assert meta["attachments_failed"] == 0 and meta["comments_stored"] == 4 and meta["comment_requests"] == 1
    assert meta["attachment_bytes_downloaded"] > 0 and meta["attachment_peak_worker_rss_mb"] > 0
    stored = _attachments(migrated_db_url, files_page)
    assert {name: status for name, (status, _, _) in stored.items()} == {name: "extracted" for name in phrases}
    # Attachment chunks are the page's chunks, with the file's metadata and the page's breadcrumb + file name.
    chunks = _chunks(migrated_db_url, files_page)
    by_file = {m["file_name"]: (c, m) for c, m in chunks if m.get("section") == "attachment"}
    assert set(by_file) == set(phrases)
    content, meta_pdf = by_file["pdf-notes.pdf"]
    assert PHRASES["pdf"] in content and meta_pdf["media_type"] == "application/pdf"
    assert meta_pdf["attachment_version"] == 1 and meta_pdf["attachment_id"]
    assert meta_pdf["breadcrumb"][:2] == ["Team files", "pdf-notes.pdf"]
    assert {"page_id", "page_title", "page_url", "space_key", "content_hash", "breadcrumb"} <= set(meta_pdf)
    assert [m["chunk_index"] for _, m in chunks] == list(range(len(chunks)))
    # Comments: a "Comments" section of the page, author and day, the inline anchor, [resolved], the reply.
    comment_chunks = [(c, m) for c, m in _chunks(migrated_db_url, discussed) if m.get("section") == "comments"]
    text = "\n".join(c for c, _ in comment_chunks)
    assert {cid for _, m in comment_chunks for cid in m["comment_ids"]} == set(comment_ids.values())
    assert f"> {ANCHOR}" in text and "[resolved]" in text and "reply to" in text
    assert text.index(FOOTER) < text.index(REPLY) < text.index(INLINE)
    assert comment_chunks[0][1]["breadcrumb"][:2] == ["Rollout plan", "Comments"]


def test_page_edits_download_nothing_and_a_new_version_downloads_once(migrated_db_url, instance, site):
    key = only_space(site)
    page_id, phrases = _files_page(site, key, "Five files", kinds=("pdf", "docx", "txt", "csv", "md"))
    discussed, comment_ids = _discussed_page(site, key)
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        assert sb.conf.stats[DOWNLOAD] == 5

        site.clock.advance(minutes=5)
        site.edit_page(page_id, body="<p>Five files, edited: the list is longer now.</p>")
        edited = sync_space(instance, resources, key)
        assert sb.conf.stats[DOWNLOAD] == 5  # an edit of the page alone downloads nothing
        meta = asset_metadata(edited, "page_attachments")
        assert (meta["attachments_unchanged"], meta["attachments_downloaded"]) == (5, 0)
        for phrase in phrases.values():
            assert _found(_search(sb, migrated_db_url, phrase), page_id, phrase)

        # Replace one file (same name, a new version): no page version, CQL on attachments finds it.
        site.clock.advance(minutes=5)
        fresh = good_file("docx", "docx-notes", "periwinkle anvil forecast")
        site.add_attachment(page_id, "docx-notes.docx", data=fresh.blob, media_type=fresh.media_type)
        site.add_comment(discussed, "<p>a late remark about tamarind sprockets</p>")
        replaced = sync_space(instance, resources, key)
        assert sb.conf.stats[DOWNLOAD] == 6  # exactly one more
        changed = asset_metadata(replaced, "changed_pages")
        assert changed["pages_with_changed_comments_or_attachments"] == 2
        assert _found(_search(sb, migrated_db_url, "periwinkle anvil forecast"), page_id, "periwinkle anvil forecast")
        assert _found(_search(sb, migrated_db_url, "tamarind sprockets"), discussed, "tamarind sprockets")
        assert not any(PHRASES["docx"] in c for c, _ in _chunks(migrated_db_url, page_id))
        assert _attachments(migrated_db_url, page_id)["docx-notes.docx"][2] == 2

        # Deletions make no version and CQL cannot list them: the page's next sync (here an edit) removes them.
        site.clock.advance(minutes=5)
        site.remove_attachment(page_id, "txt-notes.txt")
        site.delete_comment(comment_ids["inline"])
        site.edit_page(page_id, body="<p>Five files, edited again.</p>")
        site.edit_page(discussed, body=f"<p>The {ANCHOR} is three attempts per minute, still.</p>")
        assert sync_space(instance, resources, key).success
        assert sb.conf.stats[DOWNLOAD] == 6
    assert not any(PHRASES["txt"] in c for c, _ in _chunks(migrated_db_url, page_id))
    assert not any(INLINE in c for c, _ in _chunks(migrated_db_url, discussed))
    assert any(FOOTER in c for c, _ in _chunks(migrated_db_url, discussed))
    assert "txt-notes.txt" not in _attachments(migrated_db_url, page_id)


def test_bad_files_are_recorded_with_their_reason_and_nothing_else_is_lost(migrated_db_url, instance, site):
    key = only_space(site)
    page = site.create_page(key, "Bad uploads", "<p>The quarantine shelf of the wiki.</p>")
    bad = bad_files()
    for sample in bad:
        site.add_attachment(page.id, sample.filename, data=sample.blob, media_type=sample.media_type)
    good = good_file("txt", "survivor", "lilac bellows survive")
    site.add_attachment(page.id, good.filename, data=good.blob, media_type=good.media_type)
    with sandbox_servers(site) as sb:
        result = sync_space(instance, resources_for(sb, migrated_db_url), key)
        assert result.success
        assert _found(_search(sb, migrated_db_url, "lilac bellows survive"), page.id, "lilac bellows survive")
        assert _found(_search(sb, migrated_db_url, "quarantine shelf"), page.id, "quarantine shelf")
        downloads = sb.conf.stats[DOWNLOAD]
    stored = _attachments(migrated_db_url, page.id)
    assert stored[good.filename][0] == "extracted"
    meta = asset_metadata(result, "page_attachments")
    table = meta["failed_attachments"]
    for sample in bad:
        status, reason, _ = stored[sample.filename]
        assert reason, sample.filename
        if status == "failed":
            assert sample.filename in table, sample.filename
    # A file that lies about its type is read as what it is, the mismatch noted on its row.
    assert stored["liar.docx"][0] == "extracted" and "detected application/pdf" in stored["liar.docx"][1]
    assert stored["bundle.zip"][0] == "skipped"  # an archive: downloaded (its type is checked), not extracted
    assert stored["huge.bin"][0] == "failed" and "too large" in stored["huge.bin"][1]
    assert stored["photo.png"][0] == "skipped"
    for name in ("locked.pdf", "broken.pdf", "bomb.docx", "picture.pdf"):
        assert stored[name][0] == "failed", (name, stored[name])
    # Neither the 2 GB upload nor the image is downloaded: the listing's size and type say enough.
    assert downloads == len(bad) + 1 - 2
    assert meta["attachments_failed"] == sum(1 for s, _, _ in stored.values() if s == "failed") == 5
    assert "too large" in table and "encrypted" in table and "zip bomb" in table
    # Files without text are listed in one small chunk, so their names still find the page.
    listing = [c for c, m in _chunks(migrated_db_url, page.id) if m.get("section") == "attachments"]
    assert len(listing) == 1 and "photo.png" in listing[0] and "bundle.zip" in listing[0]


def test_a_restricted_pages_attachments_and_comments_stay_hidden(migrated_db_url, instance, site):
    key = only_space(site)
    alice = site.add_user("Alice Reader", email="alice@example.com").account_id
    bob = site.add_user("Bob Reader", email="bob@example.com").account_id
    page = site.create_page(key, "Salary bands", "<p>Only for the people team.</p>")
    secret = good_file("pdf", "bands", "mandolin payroll matrix")
    site.add_attachment(page.id, secret.filename, data=secret.blob, media_type=secret.media_type)
    site.add_comment(page.id, "<p>the gooseberry bonus pool stays private</p>")
    site.restrict_page(page.id, [bob, site.default_user.account_id])
    with sandbox_servers(site) as sb:
        assert sync_space(instance, resources_for(sb, migrated_db_url), key).success
        for phrase in ("mandolin payroll matrix", "gooseberry bonus pool"):
            assert _found(_search(sb, migrated_db_url, phrase, as_user=bob), page.id, phrase), phrase
            assert not any(r.page_id == page.id for r in _search(sb, migrated_db_url, phrase, as_user=alice))


def test_reconciliation_removes_deleted_comments_and_attachments_of_unchanged_pages(migrated_db_url, instance, site):
    key = only_space(site)
    page_id, phrases = _files_page(site, key, "Kept files", kinds=("txt", "csv"))
    discussed, comment_ids = _discussed_page(site, key)
    reconcile = [ON.page_reconciliation, ON.page_metadata, ON.page_attachments, ON.page_chunks, ON.chunk_embeddings]
    with sandbox_servers(site) as sb:
        resources = resources_for(sb, migrated_db_url)
        assert sync_space(instance, resources, key).success
        # No page changes: CQL shows neither deletion; the weekly reconciliation's listing does.
        site.clock.advance(minutes=5)
        site.remove_attachment(page_id, "txt-notes.txt")
        site.delete_comment(comment_ids["inline"])
        downloads = sb.conf.stats[DOWNLOAD]
        result = dg.materialize(reconcile, partition_key=key, instance=instance, resources=resources)
        assert result.success
        again = dg.materialize(reconcile, partition_key=key, instance=instance, resources=resources)
        assert sb.conf.stats[DOWNLOAD] == downloads  # the pages' other attachments are unchanged
    first = asset_metadata(result, "page_reconciliation")
    assert first["pages_with_changed_comments_or_attachments"] == 2 and first["deleted"] == 0
    assert asset_metadata(again, "page_reconciliation")["pages_with_changed_comments_or_attachments"] == 0
    assert not any(PHRASES["txt"] in c for c, _ in _chunks(migrated_db_url, page_id))
    assert any(PHRASES["csv"] in c for c, _ in _chunks(migrated_db_url, page_id))
    assert not any(INLINE in c for c, _ in _chunks(migrated_db_url, discussed))
    assert any(FOOTER in c for c, _ in _chunks(migrated_db_url, discussed))
    assert set(_attachments(migrated_db_url, page_id)) == {"csv-notes.csv"}
