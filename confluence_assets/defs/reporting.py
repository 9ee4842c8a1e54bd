"""Markdown tables and figures for asset metadata (what a user reads on a materialisation page)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from confluence_assets.confluence.keys import space_key_to_partition_key
from confluence_assets.sync.attachment_step import AttachmentFailure

MAX_ROWS = 50


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("[", "\\[").replace("]", "\\]")


def _table(items: Sequence, empty: str, header: Sequence[str], row: Callable[[Any], Sequence[object]]) -> str:
    """A Markdown table of the first MAX_ROWS items (cells already escaped by ``row``), or ``empty``."""
    if not items:
        return empty
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row(item)) + " |" for item in items[:MAX_ROWS]]
    if len(items) > MAX_ROWS:
        lines.append(f"\n… and {len(items) - MAX_ROWS} more")
    return "\n".join(lines)


def changes_table(changes: Sequence) -> str:
    return _table(
        changes,
        "No changed pages.",
        ("change", "page", "version"),
        lambda c: (c.kind, f"[{_cell(c.title)}]({c.url})", c.version),
    )


def failures_table(failures: Sequence) -> str:
    return _table(
        failures,
        "No failed pages.",
        ("page", "title", "error"),
        lambda f: (f.page_id, _cell(f.title), _cell(f.error[:200])),
    )


def skipped_table(skipped: Sequence[tuple[str, str]]) -> str:
    """Results Confluence returned that could not be staged: (page id, reason)."""
    return _table(skipped, "No skipped pages.", ("page", "reason"), lambda s: (_cell(s[0]), _cell(s[1][:200])))


def space_table(spaces: Sequence, permissions: Mapping[str, Any] | None = None) -> str:
    """The selected spaces; with ``permissions`` (key -> permission_refresh.SpacePermissionsSummary) also
    how many of each space's pages are restricted (or not known) and when its permissions were refreshed."""
    permissions = permissions or {}

    def row(s) -> tuple:
        name = f"[{_cell(s.name)}]({s.url})" if s.url else _cell(s.name)
        p = permissions.get(s.key)
        shown = (p.restricted_pages, p.unknown_pages, p.refreshed_at or "never") if p else ("", "", "never")
        return (s.key, name, s.type, s.status, *shown)

    header = ("key", "name", "type", "status", "restricted pages", "pages not known", "permissions refreshed at")
    return _table(spaces, "No spaces selected.", header, row)


def space_refresh_metadata(refresh, permissions: Mapping[str, Any] | None = None) -> dict:
    """What a space refresh did, as confluence_spaces shows it (the asset and the space sensor alike)."""
    return {
        "spaces_visible": refresh.visible,
        "spaces_selected": len(refresh.selection.selected),
        "partitions_added": dg.MetadataValue.json([space_key_to_partition_key(k) for k in refresh.added]),
        "partitions_removed": dg.MetadataValue.json([space_key_to_partition_key(k) for k in refresh.removed]),
        "spaces": dg.MetadataValue.md(space_table(refresh.selection.selected, permissions)),
    }


def named_failures_table(failures: Sequence[tuple[str, str]], what: str) -> str:
    """(name or page id, reason) of what could not be read: pages or groups left unknown (hidden)."""
    return _table(failures, f"No {what} left unknown.", (what, "reason"), lambda f: (_cell(f[0]), _cell(f[1][:200])))


def failed_attachments_table(failures: list[AttachmentFailure]) -> str:
    return _table(
        failures,
        "No failed attachments.",
        ("page", "attachment", "file", "reason"),
        lambda f: (f.page_id, f.attachment_id, _cell(f.file_name), _cell(f.reason[:200])),
    )


def extraction_table(by_type: dict[str, list[float]]) -> str:
    """Extraction per file type: files, pages (slides, sheets), the workers' seconds and the rates."""

    def row(item: tuple[str, list[float]]) -> tuple[str, ...]:
        kind, (files, units, seconds, size) = item
        per_second = (lambda v: f"{v / seconds:,.1f}") if seconds else (lambda v: "-")
        return (
            kind,
            f"{files:.0f}",
            f"{units:.0f}" if units else "-",
            f"{seconds:.2f}",
            per_second(files),
            per_second(units) if units else "-",
            per_second(size / 2**20),
        )

    return _table(
        sorted(by_type.items()),
        "Nothing extracted.",
        ("type", "files", "pages, slides, sheets", "worker seconds", "files/s", "pages/s", "MB/s"),
        row,
    )
