"""The Markdown-ish text every extractor writes: unit headings, Markdown tables, ``column: value`` rows,
and the cap on the total."""

from __future__ import annotations

import datetime as dt
import re

from confluence_assets.extract.types import TextFull

_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_SPECIAL = re.compile(r"[\r\n|\t\u00a0]|  ")


def cell_text(value: object) -> str:
    """One table cell on one line: 1200.0 -> "1200", dates ISO, newlines and pipes kept from breaking rows."""
    if isinstance(value, str):  # most cells: checked first, rewritten only when they need it
        return _clean(value) if _SPECIAL.search(value) else value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time():
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time | dt.timedelta):
        return value.isoformat() if not isinstance(value, dt.timedelta) else str(value)
    return _clean(str(value))


def _clean(text: str) -> str:
    text = _SPACES.sub(" ", text.replace("\r", " ").replace("\n", " ")).strip()
    return text.replace("|", "\\|")


def markdown_table(rows: list[list[str]]) -> str:
    """A Markdown table with the first row as its header (the usual shape of document and slide tables)."""
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    width = max(len(row) for row in rows)
    padded = [row + [""] * (width - len(row)) for row in rows]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(row) + " |" for row in padded[1:]]
    return "\n".join(lines)


def record_lines(header: list[str], row: list[str]) -> str:
    """One spreadsheet row as ``column: value`` pairs, so that a chunk cut from the middle of a long sheet
    still says what each value is. Empty cells are left out; unnamed columns use their letter."""
    pairs = []
    for index, value in enumerate(row):
        if value == "":
            continue
        name = header[index] if index < len(header) and header[index] else column_letter(index)
        pairs.append(f"{name}: {value}")
    return " | ".join(pairs)


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


class TextBuilder:
    """Collects blocks (paragraphs, headings, tables) up to ``max_chars``; past it, keeps what fits and
    raises TextFull so that the extractor stops reading the rest of the file."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self.info: dict = {}  # what the extractor learnt as it went (unit, units, rows, encoding), kept if cut

    def add(self, block: str, *, line: bool = False) -> None:
        """Add a paragraph (after a blank line), or with ``line`` one line right under the previous one
        (the rows of a sheet)."""
        block = block.strip("\n")
        if not block.strip():
            return
        separator = "\n" if line and self.parts else "\n\n" if self.parts else ""
        room = self.max_chars - self.size - len(separator)
        if len(block) > room:
            self.parts.append(separator + block[: max(0, room)])
            self.size = self.max_chars
            self.truncated = True
            raise TextFull
        self.parts.append(separator + block)
        self.size += len(separator) + len(block)

    def heading(self, text: str, level: int = 2) -> None:
        self.add("#" * level + " " + cell_text(text).replace("\\|", "|"))

    def text(self) -> str:
        joined = "".join(self.parts)
        return _BLANK_LINES.sub("\n\n", joined).strip() + ("\n" if joined else "")
