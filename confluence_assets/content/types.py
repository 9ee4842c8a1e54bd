"""The values the content modules hand to the asset graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ConversionError(Exception):
    """A page that cannot be converted at all (no storage body, or a failure we could not contain)."""

    def __init__(self, page_id: str | None, reason: str) -> None:
        self.page_id = page_id
        self.reason = reason
        super().__init__(f"page {page_id or '?'}: {reason}")


@dataclass(frozen=True, slots=True)
class ConvertedPage:
    markdown: str
    metadata: dict[str, Any]  # JSON-serialisable: the confluence_pages.metadata JSONB
    path: str  # "/<root_id>/.../<page_id>", the materialised path
    url: str = ""  # the page's own web URL
    title: str = ""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a page, ready to embed.

    ``content`` is Markdown. ``content[own_start:own_end]`` is the text this chunk contributes to the
    page; what lies before it repeats context (the tail of the previous chunk, a table's header rows or a
    re-opened code fence) and what lies after it is a synthetic closing fence. ``embedding_text`` is
    exactly what is embedded and hashed: the breadcrumb line, a blank line, then ``content``.
    """

    index: int
    content: str
    section_title: str
    breadcrumb: list[str]  # [page title, h1, h2, ...] down to this chunk's section
    content_hash: str  # sha256 hex of embedding_text (UTF-8)
    token_count: int  # estimate_tokens(embedding_text)
    embedding_text: str = ""
    page_title: str = ""
    own_start: int = 0
    own_end: int = 0
