"""A linear scan of Markdown into blocks: headings, fenced code, tables and text.

The chunker and the metadata outline share it, so "what is a heading" (never a ``#`` line inside a
fence) and "where does a code block end" have one answer. Fences and tables are recognised inside
block quotes and list items too (``> ````, indented ``|``), because panels and lists contain them.

Why not langchain's Markdown splitters: MarkdownHeaderTextSplitter strips every line (indentation is
lost); ExperimentalMarkdownSyntaxTextSplitter pops lines from the front of a list and grows strings by
``+=`` on a pydantic field (quadratic on multi-MB pages), drops horizontal rules and everything after
an unclosed fence. Size splitting of long prose still goes through langchain (see chunking.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PREFIX = r"((?:[ \t]*>)*[ \t]*)"
_PREFIX_RE = re.compile(_PREFIX)
_FENCE_OPEN = re.compile(_PREFIX + r"(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"(#{1,6})(?:[ \t]+(.*))?$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(?<!\\)(?:\*+|`+|~~)")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_TABLE_LINE = re.compile(_PREFIX + r"\|")
_TABLE_SEPARATOR = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


@dataclass(slots=True)
class Block:
    kind: str  # "heading" | "code" | "table" | "text"
    start: int  # offsets into the Markdown; text[start:end] is the block without its final newline
    end: int
    level: int = 0  # heading level
    title: str = ""  # heading text
    line_prefix: str = ""  # code/table: the block-quote/indent prefix of its lines
    fence: str = ""  # code: the opening fence characters, e.g. "```"
    closed: bool = True  # code: whether a closing fence was found
    header_end: int = 0  # table: offset where the header (row + separator) ends; == start if none


def heading_text(raw: str) -> str:
    """A heading's plain text for breadcrumbs: no closing hashes, emphasis, link targets or escapes."""
    text = _CLOSING_HASHES.sub("", raw.strip())
    text = _LINK.sub(r"\1", text)
    text = _EMPHASIS.sub("", text)
    return " ".join(_ESCAPE.sub(r"\1", text).split())


def scan(markdown: str) -> list[Block]:
    blocks: list[Block] = []
    pos = 0
    current: Block | None = None  # an open text or table block
    code: Block | None = None
    table_lines = 0
    for line in markdown.split("\n"):
        start, end = pos, pos + len(line)
        pos = end + 1
        if code is not None:
            code.end = end
            stripped = line[len(_leading_prefix(line)) :].rstrip()
            if stripped and set(stripped) == {code.fence[0]} and len(stripped) >= len(code.fence):
                code.closed = True
                code = None
            continue
        fence = _FENCE_OPEN.match(line)
        if fence and not (fence.group(2)[0] == "`" and "`" in fence.group(3)):
            current = None
            code = Block("code", start, end, line_prefix=fence.group(1), fence=fence.group(2), closed=False)
            blocks.append(code)
            continue
        if line.startswith("#") and (heading := _HEADING.match(line)):
            current = None
            blocks.append(
                Block("heading", start, end, level=len(heading.group(1)), title=heading_text(heading.group(2) or ""))
            )
            continue
        if not line.strip():
            current = None
            continue
        table = _TABLE_LINE.match(line)
        if table:
            prefix = table.group(1)
            if current is not None and current.kind == "table" and current.line_prefix == prefix:
                current.end = end
                table_lines += 1
                if table_lines == 2:
                    current.header_end = end if _TABLE_SEPARATOR.match(line[len(prefix) :]) else current.start
            else:
                current = Block("table", start, end, line_prefix=prefix, header_end=start)
                table_lines = 1
                blocks.append(current)
            continue
        if current is not None and current.kind == "text":
            current.end = end
        else:
            current = Block("text", start, end)
            blocks.append(current)
    return blocks


def _leading_prefix(line: str) -> str:
    m = _PREFIX_RE.match(line)
    return m.group(1) if m else ""


def outline(markdown: str) -> list[dict[str, object]]:
    """The page's headings, in order: [{level, text}]."""
    return [{"level": b.level, "text": b.title} for b in scan(markdown) if b.kind == "heading"]
