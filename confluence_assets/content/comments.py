"""A page's comments as the "Comments" section of its searchable text.

Confluence keeps footer and inline comments as content of their own (v1 ``type: comment``), replies
naming their parent in ``ancestors``. Each comment is shown with its author's display name and day;
an inline one with the text it is anchored to (``> anchor``, then the comment); a resolved one marked
``[resolved]``; replies under their parent, in the order they were written. A thread (a root comment and
its replies) is kept together, so a chunk never separates a reply from what it answers unless the
thread alone is longer than a chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .convert import convert_page

SECTION = "Comments"


@dataclass(frozen=True)
class PageComment:
    comment_id: str
    page_id: str
    parent_id: str | None
    location: str  # footer | inline
    resolved: bool
    anchor: str  # inline: the text of the page the comment is anchored to
    author: str
    created_at: datetime | None
    version: int
    markdown: str


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def comment_from_v1(comment: Mapping[str, Any], page_id: str, base_url: str) -> PageComment:
    """A v1 comment (search result or ``child/comment`` entry, with ``body.storage``, ``history``,
    ``version``, ``ancestors`` and ``extensions.inlineProperties,extensions.resolution``) of ``page_id``."""
    storage = _get(comment, "body", "storage", "value") or ""
    try:
        shell = {"id": comment.get("id"), "type": "comment", "title": "", "body": {"storage": {"value": storage}}}
        markdown = convert_page(shell, base_url).markdown.strip()
    except Exception:  # a comment that cannot be converted still shows its author and day
        markdown = ""
    ancestors = comment.get("ancestors") or []
    parent = ancestors[-1].get("id") if ancestors and isinstance(ancestors[-1], Mapping) else None
    author = _get(comment, "history", "createdBy") or _get(comment, "version", "by") or {}
    version = _get(comment, "version", "number")
    return PageComment(
        comment_id=str(comment.get("id")),
        page_id=page_id,
        parent_id=str(parent) if parent else None,
        location=_get(comment, "extensions", "location") or "footer",
        resolved=_get(comment, "extensions", "resolution", "status") == "resolved",
        anchor=(_get(comment, "extensions", "inlineProperties", "originalSelection") or "").strip(),
        author=(author.get("displayName") or author.get("publicName") or "") if isinstance(author, Mapping) else "",
        created_at=_when(_get(comment, "history", "createdDate")) or _when(_get(comment, "version", "when")),
        version=version if isinstance(version, int) else 1,
        markdown=markdown,
    )


def threads(comments: Iterable[PageComment]) -> list[list[PageComment]]:
    """Root comments (footer ones first, then inline ones, each by date) with their replies below them,
    depth first. A reply whose parent is not among ``comments`` counts as a root."""
    every = list(comments)
    ids = {c.comment_id for c in every}

    def order(c: PageComment) -> tuple:
        return (c.created_at.isoformat() if c.created_at else "", c.comment_id.zfill(20))

    replies: dict[str, list[PageComment]] = {}
    roots = []
    for c in every:
        if c.parent_id and c.parent_id in ids:
            replies.setdefault(c.parent_id, []).append(c)
        else:
            roots.append(c)
    roots.sort(key=lambda c: (c.location != "footer", *order(c)))
    result = []
    for root in roots:
        thread: list[PageComment] = []
        stack = [(root, 0)]
        while stack:
            comment, depth = stack.pop()
            thread.append(comment)
            stack.extend((r, depth + 1) for r in sorted(replies.get(comment.comment_id, []), key=order, reverse=True))
        result.append(thread)
    return result


def thread_markdown(thread: list[PageComment]) -> str:
    """One thread as Markdown: each comment's header line (author, day, kind, ``[resolved]``), an inline
    comment's anchor as a quote, then its text; replies marked as replies to their parent's author."""
    authors = {c.comment_id: c.author for c in thread}
    parts = []
    for c in thread:
        day = c.created_at.date().isoformat() if c.created_at else ""
        if c.parent_id and c.parent_id in authors:
            kind = f"reply to {authors[c.parent_id] or 'a comment'}"
        else:
            kind = "inline comment" if c.location == "inline" else "comment"
        header = f"**{c.author or 'Unknown user'}** ({', '.join(x for x in (day, kind) if x)})"
        if c.resolved:
            header += " [resolved]"
        lines = [header + ":"]
        if c.anchor and not c.parent_id:
            lines.append("\n".join(f"> {line}" for line in c.anchor.splitlines() or [c.anchor]))
        if c.markdown:
            lines.append(c.markdown)
        parts.append("\n\n".join(lines))
    return "\n\n".join(parts)
