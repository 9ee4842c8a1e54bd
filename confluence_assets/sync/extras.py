"""The stored comments and attachment texts of pages (sql/0.1.0/060), as page_chunks reads them.

page_attachments (sync/attachment_step.py) writes both tables; page_chunks adds what they hold to each
page's chunks (content/extras.py), so a step never imports another to know them.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from confluence_assets.content.comments import PageComment
from confluence_assets.content.extras import AttachmentText


def stored_extras(
    conn: psycopg.Connection, page_ids: list[str]
) -> dict[str, tuple[list[PageComment], list[AttachmentText]]]:
    """{page id: (its comments, its attachments)} of the pages that have any."""
    found: dict[str, tuple[list[PageComment], list[AttachmentText]]] = {}
    for row in conn.execute(
        """SELECT comment_id, page_id, parent_id, location, resolved, anchor, author, created_at, version, markdown
           FROM confluence_comments WHERE page_id = ANY(%s) ORDER BY page_id, created_at, comment_id""",
        (page_ids,),
    ):
        found.setdefault(row[1], ([], []))[0].append(PageComment(*row))
    for aid, pid, name, media_type, version, size, status, text in conn.execute(
        """SELECT attachment_id, page_id, file_name, media_type, version, file_size, status, text
           FROM confluence_attachments WHERE page_id = ANY(%s) ORDER BY page_id, file_name, attachment_id""",
        (page_ids,),
    ):
        found.setdefault(pid, ([], []))[1].append(AttachmentText(aid, name, media_type, version, size, status, text))
    return found


def known_versions(conn: psycopg.Connection, ids: list[str]) -> dict[str, int]:
    """{comment or attachment id: the version stored} among ``ids``: what changed_pages compares a changed
    comment or attachment with before staging its page again."""
    if not ids:
        return {}
    rows = conn.execute(
        """SELECT comment_id, version FROM confluence_comments WHERE comment_id = ANY(%(ids)s)
           UNION ALL SELECT attachment_id, version FROM confluence_attachments WHERE attachment_id = ANY(%(ids)s)""",
        {"ids": ids},
    )
    return dict(rows.fetchall())


def stored_children(conn: psycopg.Connection, source_id: str, types: Sequence[str]) -> dict[str, tuple[str, int]]:
    """{comment / attachment id: (its page's id, the version stored)} of the space's live pages, for the
    ``types`` followed: what reconciliation compares with Confluence's listing to find deletions."""
    rows = conn.execute(
        """SELECT c.child_id, c.page_id, c.version
           FROM (SELECT comment_id AS child_id, page_id, version FROM confluence_comments
                  WHERE %(comments)s AND source_id = %(source)s
                 UNION ALL
                 SELECT attachment_id, page_id, version FROM confluence_attachments
                  WHERE %(attachments)s AND source_id = %(source)s) c
           JOIN confluence_pages p ON p.page_id = c.page_id AND NOT p.is_deleted""",
        {"source": source_id, "comments": "comment" in types, "attachments": "attachment" in types},
    )
    return {child: (page, version) for child, page, version in rows}
