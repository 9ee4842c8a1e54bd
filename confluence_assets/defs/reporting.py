"""Markdown tables for asset metadata (what a user reads on a materialisation page)."""

from __future__ import annotations

from collections.abc import Sequence

MAX_ROWS = 50


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("[", "\\[").replace("]", "\\]")


def _more(total: int) -> list[str]:
    return [f"\n… and {total - MAX_ROWS} more"] if total > MAX_ROWS else []


def changes_table(changes: Sequence) -> str:
    if not changes:
        return "No changed pages."
    lines = ["| change | page | version |", "|---|---|---|"]
    lines += [f"| {c.kind} | [{_cell(c.title)}]({c.url}) | {c.version} |" for c in changes[:MAX_ROWS]]
    return "\n".join(lines + _more(len(changes)))


def failures_table(failures: Sequence) -> str:
    if not failures:
        return "No failed pages."
    lines = ["| page | title | error |", "|---|---|---|"]
    lines += [f"| {f.page_id} | {_cell(f.title)} | {_cell(f.error[:200])} |" for f in failures[:MAX_ROWS]]
    return "\n".join(lines + _more(len(failures)))


def skipped_table(skipped: Sequence[tuple[str, str]]) -> str:
    """Results Confluence returned that could not be staged: (page id, reason)."""
    if not skipped:
        return "No skipped pages."
    lines = ["| page | reason |", "|---|---|"]
    lines += [f"| {_cell(page_id)} | {_cell(reason[:200])} |" for page_id, reason in skipped[:MAX_ROWS]]
    return "\n".join(lines + _more(len(skipped)))


def space_table(spaces: Sequence) -> str:
    if not spaces:
        return "No spaces selected."
    lines = ["| key | name | type | status |", "|---|---|---|---|"]
    lines += [
        f"| {s.key} | {f'[{_cell(s.name)}]({s.url})' if s.url else _cell(s.name)} | {s.type} | {s.status} |"
        for s in spaces[:MAX_ROWS]
    ]
    return "\n".join(lines + _more(len(spaces)))
