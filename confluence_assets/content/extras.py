"""What a page's chunks hold besides its body: its comments and its attachments' text.

All of it is chunked as the page's own chunks (numbered after the body's), so it is swapped in, deleted
and permission-checked with the page. Each group is chunked on its own, headed so that its breadcrumb
says where the text is from:

- comments: a ``# Comments`` section; threads (a comment and its replies) packed together up to a
  chunk's size, each chunk naming the comment ids it holds (``comment_ids``, ``section: comments``);
- each attachment with text: ``# <file name>`` above the extracted text (whose ``## Page N`` /
  ``## Slide N`` headings nest below it), so the breadcrumb is the page's plus the file name
  (``attachment_id``, ``file_name``, ``media_type``, ``attachment_version``, ``section: attachment``);
- attachments without text (images, archives, failed or skipped files): one small ``# Attachments``
  chunk per page listing their names and types, so a search for a file name finds its page, without an
  embedding per screenshot (``attachment_ids``, ``section: attachments``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluence_assets.tokens import estimate_tokens

from .comments import SECTION, PageComment, thread_markdown, threads
from .types import Chunk


@dataclass(frozen=True)
class AttachmentText:
    attachment_id: str
    file_name: str
    media_type: str
    version: int
    file_size: int | None
    status: str  # extracted | failed | skipped
    text: str


def extra_chunks(
    chunker: Callable[..., list[Chunk]],
    page_title: str,
    comments: Sequence[PageComment],
    attachments: Sequence[AttachmentText],
    *,
    first_index: int,
    chunk_tokens: int,
    **chunk_options: Any,
) -> list[tuple[Chunk, dict[str, Any]]]:
    """The page's comment and attachment chunks, numbered from ``first_index``, each with the metadata
    keys it adds to the page's chunk metadata."""
    groups: list[tuple[str, dict[str, Any]]] = []
    for pack in _packs([(thread_markdown(t), [c.comment_id for c in t]) for t in threads(comments)], chunk_tokens):
        text = "\n\n".join(md for md, _ in pack)
        ids = [cid for _, group in pack for cid in group]
        groups.append((f"# {SECTION}\n\n{text}", {"section": "comments", "comment_ids": ids}))
    listed = []
    for att in sorted(attachments, key=lambda a: (a.file_name, a.attachment_id)):
        if att.text.strip():
            meta = {
                "section": "attachment",
                "attachment_id": att.attachment_id,
                "file_name": att.file_name,
                "media_type": att.media_type,
                "attachment_version": att.version,
            }
            groups.append((f"# {_heading(att.file_name)}\n\n{att.text}", meta))
        else:
            listed.append(att)
    if listed:
        lines = [f"- {_heading(a.file_name)} ({_describe(a)})" for a in listed]
        meta = {"section": "attachments", "attachment_ids": [a.attachment_id for a in listed]}
        groups.append(("# Attachments\n\n" + "\n".join(lines), meta))
    out: list[tuple[Chunk, dict[str, Any]]] = []
    for markdown, meta in groups:
        for chunk in chunker(markdown, page_title, chunk_tokens=chunk_tokens, **chunk_options):
            out.append((replace(chunk, index=first_index + len(out)), meta))
    return out


def _packs(threads_md: list[tuple[str, list[str]]], chunk_tokens: int) -> list[list[tuple[str, list[str]]]]:
    """Threads in order, packed while they fit a chunk together (a longer thread is a pack of its own)."""
    packs: list[list[tuple[str, list[str]]]] = []
    size = 0
    for item in threads_md:
        tokens = estimate_tokens(item[0])
        if packs and size + tokens <= chunk_tokens * 0.9:
            packs[-1].append(item)
            size += tokens
        else:
            packs.append([item])
            size = tokens
    return packs


def _heading(name: str) -> str:
    return " ".join(name.split()) or "Untitled attachment"


def _describe(att: AttachmentText) -> str:
    parts = [att.media_type or "unknown type"]
    if att.file_size is not None:
        parts.append(
            f"{att.file_size / 1024:,.0f} KB"
            if att.file_size < 1024 * 1024
            else f"{att.file_size / 1024 / 1024:,.1f} MB"
        )
    if att.status != "extracted":
        parts.append("content not indexed")
    return ", ".join(parts)
