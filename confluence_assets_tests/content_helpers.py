"""Helpers shared by the content tests: sample pages and an independent reading of fenced blocks.

Test data: confluence_assets/sandbox/confluence_samples, ten real pages from querypie.atlassian.net (space QM),
github.com/querypie/querypie-docs, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
"""

from __future__ import annotations

import json
import re

from confluence_assets.sandbox.samples import PACKAGED_SAMPLES_DIR

SAMPLES_DIR = PACKAGED_SAMPLES_DIR
BASE_URL = "https://querypie.atlassian.net/wiki"
SAMPLE_IDS = sorted(p.name for p in SAMPLES_DIR.iterdir() if (p / "page.xhtml").is_file())
assert len(SAMPLE_IDS) == 10, f"the ten sample pages are missing from {SAMPLES_DIR}"

_FENCE = re.compile(r"^([ \t>]*)(`{3,}|~{3,})(.*)$")


def load_sample(page_id: str) -> dict:
    """page.v1.json plus the children/attachments expansions from the sample's other files."""
    folder = SAMPLES_DIR / page_id
    page = json.loads((folder / "page.v1.json").read_text(encoding="utf-8"))
    attachments = json.loads((folder / "attachments.v1.json").read_text(encoding="utf-8"))
    children_v2 = json.loads((folder / "children.v2.json").read_text(encoding="utf-8"))
    page["children"] = {
        "attachment": attachments,
        "page": {"results": [{"id": c["id"], "title": c["title"]} for c in children_v2.get("results", [])]},
    }
    return page


def fenced_lines(markdown: str) -> list[str]:
    """Every line inside a fenced code block (prefix of quote markers/indent kept), read independently."""
    inside: list[str] = []
    fence: str | None = None
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(2)
        elif m and set(m.group(2)) == {fence[0]} and len(m.group(2)) >= len(fence) and not m.group(3).strip():
            fence = None
        else:
            inside.append(line)
    return inside


def fences_balanced(markdown: str) -> bool:
    fence: str | None = None
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if not m:
            continue
        if fence is None:
            fence = m.group(2)
        elif set(m.group(2)) == {fence[0]} and len(m.group(2)) >= len(fence) and not m.group(3).strip():
            fence = None
    return fence is None


def table_rows(markdown: str) -> list[list[str]]:
    """Markdown tables outside code, as lists of row lines."""
    tables: list[list[str]] = []
    current: list[str] = []
    code = set(fenced_lines(markdown))
    for line in markdown.split("\n"):
        stripped = line.lstrip(" >")
        if stripped.startswith("|") and line not in code:
            current.append(stripped)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def column_count(row: str) -> int:
    return len(re.split(r"(?<!\\)\|", row.strip())) - 2


def non_ws(text: str) -> str:
    return re.sub(r"\s+", "", text)
