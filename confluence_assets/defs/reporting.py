"""Markdown tables and figures for asset metadata (what a user reads on a materialisation page)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from confluence_assets.confluence.keys import space_key_to_partition_key

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


def space_table(spaces: Sequence) -> str:
    return _table(
        spaces,
        "No spaces selected.",
        ("key", "name", "type", "status"),
        lambda s: (s.key, f"[{_cell(s.name)}]({s.url})" if s.url else _cell(s.name), s.type, s.status),
    )


def space_refresh_metadata(refresh) -> dict:
    """What a space refresh did, as confluence_spaces shows it (the asset and the space sensor alike)."""
    return {
        "spaces_visible": refresh.visible,
        "spaces_selected": len(refresh.selection.selected),
        "partitions_added": dg.MetadataValue.json([space_key_to_partition_key(k) for k in refresh.added]),
        "partitions_removed": dg.MetadataValue.json([space_key_to_partition_key(k) for k in refresh.removed]),
        "spaces": dg.MetadataValue.md(space_table(refresh.selection.selected)),
    }
