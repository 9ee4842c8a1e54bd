"""Helpers shared by the content tests: sample pages and an independent reading of fenced blocks.

Test data: confluence_assets/sandbox/confluence_samples, ten real pages from querypie.atlassian.net (space QM),
github.com/querypie/querypie-docs, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from confluence_assets.sandbox.samples import PACKAGED_SAMPLES_DIR

SAMPLES_DIR = PACKAGED_SAMPLES_DIR
BASE_URL = "https://querypie.atlassian.net/wiki"
SAMPLE_IDS = sorted(p.name for p in SAMPLES_DIR.iterdir() if (p / "page.xhtml").is_file())
assert len(SAMPLE_IDS) == 10, f"the ten sample pages are missing from {SAMPLES_DIR}"

_FENCE = re.compile(r"^([ \t>]*)(`{3,}|~{3,})(.*)$")


def read_json(page_id: str, name: str) -> dict:
    return json.loads((SAMPLES_DIR / page_id / name).read_text(encoding="utf-8"))


def sample_author_name(account_id: str) -> str:
    """The samples carry account ids only; v1 responses name people, so each id gets a stable name."""
    return f"Author {account_id[-6:]}"


def _v1_user(account_id: str) -> dict:
    # The shape of a v1 user in version.by / history.createdBy (Cloud hides e-mail addresses: "").
    return {"type": "known", "accountId": account_id, "email": "", "displayName": sample_author_name(account_id)}


def load_sample(page_id: str) -> dict:
    """page.v1.json plus the expansions the pipeline asks for, from the sample's other files: children
    and attachments (children.v2.json, attachments.v1.json), version and history (page.v2.json)."""
    page = read_json(page_id, "page.v1.json")
    v2 = read_json(page_id, "page.v2.json")
    children_v2 = read_json(page_id, "children.v2.json")
    page["children"] = {
        "attachment": read_json(page_id, "attachments.v1.json"),
        "page": {"results": [{"id": c["id"], "title": c["title"]} for c in children_v2.get("results", [])]},
    }
    page["version"] = {
        "number": v2["version"]["number"],
        "when": v2["version"]["createdAt"],
        "by": _v1_user(v2["version"]["authorId"]),
    }
    page["history"] = {"createdDate": v2["createdAt"], "createdBy": _v1_user(v2["authorId"])}
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


@dataclass(frozen=True)
class FencedBlock:
    info: str  # the info string after the opening fence (the language)
    lines: tuple[str, ...]  # content lines, the opening fence's prefix (indent, quote markers) removed


def fenced_blocks(markdown: str) -> list[FencedBlock]:
    """Fenced code blocks in order. A content line that lacks the opening fence's prefix is kept whole
    behind a NUL, so it never equals a code line (its indentation or quoting was lost)."""
    blocks: list[FencedBlock] = []
    open_fence: tuple[str, str, str] | None = None  # prefix, fence, info
    lines: list[str] = []
    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if open_fence is None:
            if m:
                open_fence, lines = (m.group(1), m.group(2), m.group(3).strip()), []
            continue
        prefix, fence, info = open_fence
        if m and set(m.group(2)) == {fence[0]} and len(m.group(2)) >= len(fence) and not m.group(3).strip():
            blocks.append(FencedBlock(info, tuple(lines)))
            open_fence = None
        elif line.startswith(prefix):
            lines.append(line[len(prefix) :])
        elif line.rstrip() == prefix.rstrip():  # an empty code line inside a list item or a quote
            lines.append("")
        else:
            lines.append("\0" + line)
    return blocks


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
