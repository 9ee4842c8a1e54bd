"""Step 2 (page_metadata): convert staged pages and upsert confluence_pages.

Each staged page is converted (Markdown + metadata + materialised path); the result goes to
confluence_pages (through page_tree, which keeps moved and renamed pages' descendants and every touched
parent's children list right, in the transaction of each batch) and the Markdown stays in staging for
chunking. A page that cannot be converted is recorded as failed with its reason and the others carry on.
Each page's own read restriction, as its staged payload shows it, is written in the same transaction as
its row (sync/access.py): ``ok`` when the listing expanded it in full, ``unknown`` (hidden) otherwise, so
a payload staged before restrictions were expanded never makes its page visible.
User mentions show the names of the users we already know (the authors of every staged page and of
every stored page of the space), without asking Confluence for them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from confluence_assets.confluence.keys import source_id_for
from confluence_assets.confluence.permissions import UNKNOWN, page_restriction
from confluence_assets.confluence.responses import TREE_NODE_TYPES, content_type
from confluence_assets.sync import access, crashpoints, page_tree, rendering, staging
from confluence_assets.sync.staging import FailedPage

log = logging.getLogger(__name__)

BATCH = 50


@dataclass
class ConvertSummary:
    converted: int = 0
    moved: int = 0
    links_resolved: int = 0
    failed: list[FailedPage] = field(default_factory=list)
    restrictions_unknown: list[str] = field(default_factory=list)  # converted pages hidden: restriction not known

    def metrics(self) -> dict[str, int]:
        return {
            "pages_converted": self.converted,
            "pages_failed": len(self.failed),
            "pages_moved": self.moved,
            "internal_links_resolved_by_title": self.links_resolved,
            "pages_restriction_unknown": len(self.restrictions_unknown),
        }


def _title_index(conn: psycopg.Connection, source_id: str, space_key: str) -> dict[tuple[str, str], str]:
    """(space_key, title) -> page_id for internal links that name a title: each page under its current
    title, the staged one if the page is staged. A renamed page's old stored title must not resolve, or
    the result would depend on how much of an interrupted run was already converted."""
    index = {
        (sk, title): pid
        for pid, sk, title in conn.execute(
            """SELECT p.page_id, p.space_key, p.title FROM confluence_pages p
               WHERE p.is_deleted = FALSE AND NOT EXISTS (
                 SELECT 1 FROM confluence_sync_staged_pages s
                 WHERE s.source_id = %s AND s.page_id = p.page_id)""",
            (source_id,),
        )
    }
    for pid, title in conn.execute(
        "SELECT page_id, title FROM confluence_sync_staged_pages WHERE source_id = %s", (source_id,)
    ):
        index[(space_key, title)] = pid
    return index


def known_users(conn: psycopg.Connection, source_id: str) -> dict[str, str]:
    """{account id (or DC user key / username): display name} of the users this space already tells us
    about: the authors of its stored pages (``created_by``/``last_modified_by``), then those of its staged
    payloads (``history.createdBy``, ``version.by``, ``history.lastUpdated.by``), newer names winning.
    No request to Confluence."""
    users: dict[str, str] = {}
    for account_id, name in conn.execute(
        """SELECT u->>'account_id', u->>'display_name'
           FROM confluence_pages p,
                LATERAL (VALUES (p.metadata->'created_by'), (p.metadata->'last_modified_by')) AS v(u)
           WHERE p.source_id = %s AND jsonb_typeof(u) = 'object'
           ORDER BY p.last_modified, p.page_id""",
        (source_id,),
    ):
        if account_id and name:
            users[account_id] = name
    for account_id, user_key, username, name in conn.execute(
        """SELECT u->>'accountId', u->>'userKey', u->>'username', COALESCE(u->>'displayName', u->>'publicName')
           FROM confluence_sync_staged_pages s,
                LATERAL (VALUES (s.payload->'history'->'createdBy'), (s.payload->'version'->'by'),
                                (s.payload->'history'->'lastUpdated'->'by')) AS v(u)
           WHERE s.source_id = %s AND json_typeof(u) = 'object'
           ORDER BY s.last_modified, s.page_id""",
        (source_id,),
    ):
        if name:
            for ident in (account_id, user_key, username):
                if ident:
                    users[ident] = name
    return users


def _with_body(page: dict) -> dict:
    """A tree node (folder, whiteboard, database, embed) has no storage body, whatever the listing expanded:
    it converts as an empty page (its title is what it is found by), never as a failure."""
    if content_type(page) in TREE_NODE_TYPES:
        body = page.get("body") if isinstance(page.get("body"), dict) else {}
        storage = body.get("storage") if isinstance(body.get("storage"), dict) else {}
        if not isinstance(storage.get("value"), str):
            page["body"] = {**body, "storage": {**storage, "value": "", "representation": "storage"}}
    return page


def convert_staged(
    conn: psycopg.Connection,
    space_key: str,
    *,
    base_url: str,
    convert: Callable[..., object],
    conversion_error: type[Exception],
    progress: Callable[[int], None] | None = None,
    batch_size: int = BATCH,
) -> ConvertSummary:
    """Convert every staged page waiting for it, ``batch_size`` pages a transaction; ``conn`` in autocommit."""
    source_id = source_id_for(space_key)
    titles = _title_index(conn, source_id, space_key)
    users: dict[str, str] | None = None  # read once there is something to convert
    macros = rendering.StoredSources(conn, space_key, base_url)  # included pages and child lists, no request
    summary = ConvertSummary()

    def resolve_title(target_space: str | None, title: str) -> str | None:
        found = titles.get((target_space or space_key, title))
        if found:
            summary.links_resolved += 1
        return found

    for rows in staging.to_convert(conn, source_id, batch_size):
        if users is None:
            users = known_users(conn, source_id)
        done, failed = [], []
        for page_id, title, payload in rows:
            try:
                page = _with_body(json.loads(payload))
                converted = convert(page, base_url, resolve_title=resolve_title, users=users, macros=macros)
                done.append((page_id, page, converted))
            except conversion_error as exc:
                failed.append(FailedPage(page_id, title, str(exc)))
            except Exception as exc:  # a converter bug must cost one page, not the space
                log.exception("unexpected error converting page %s", page_id)
                failed.append(FailedPage(page_id, title, f"{type(exc).__name__}: {exc}"))
        with conn.transaction():
            parents: set[str] = set()  # pages whose children lists this batch may have changed
            for page_id, page, converted in done:
                summary.moved += page_tree.store_page(conn, source_id, space_key, page, converted, parents)
                staging.mark_converted(conn, source_id, page_id, converted.markdown)
            restrictions = [page_restriction(page) for _, page, _ in done]
            access.store_page_restrictions(conn, source_id, restrictions)  # with the page rows, or not at all
            summary.restrictions_unknown.extend(r.page_id for r in restrictions if r.status == UNKNOWN)
            for f in failed:
                staging.record_failure(conn, source_id, f)
            page_tree.refresh_children(conn, parents)
        crashpoints.reached("convert_batch")
        summary.converted += len(done)
        summary.failed.extend(failed)
        if progress:
            progress(summary.converted + len(summary.failed))
    return summary
