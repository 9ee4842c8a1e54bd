"""Cutting text that does not fit a chunk into pieces that do, each within a token limit.

A long line (a table row, a code line) is cut at its spaces and ``<br>`` line breaks (how table cells keep
their lines), so no word or URL is split; only a single word longer than the limit is cut by characters,
there being no boundary to cut at. Costs are ``estimate_tokens`` of each word, which is subadditive: a
piece never costs more than the words it is made of.
"""

from __future__ import annotations

import re

from ..tokens import estimate_tokens

_BREAK = re.compile(r"<br>|\s+")  # a piece ends before or after one of these


def hard_split(text: str, limit: int) -> list[str]:
    """Cut by characters so that every piece stays within ``limit`` (each char costs at most 4)."""
    pieces: list[str] = []
    start, cost = 0, 0
    for i, ch in enumerate(text):
        c = max(1, len(ch.encode("utf-8")) - 1) if not ch.isascii() else 1
        if cost + c > max(limit, 4) and i > start:
            pieces.append(text[start:i])
            start, cost = i, 0
        cost += c
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def split_line(text: str, limit: int) -> list[str]:
    """Cut one line at spaces or ``<br>`` into pieces of at most ``limit`` tokens each."""
    pieces: list[str] = []
    start = pos = cost = 0  # the current piece is text[start:pos] and costs ``cost``
    # Words and the breaks between them are the units: a word over the limit is then cut by itself,
    # never a "<br>" after it.
    ends = [end for m in _BREAK.finditer(text) for end in m.span()]
    ends.append(len(text))
    for end in ends:
        if end <= pos:
            continue
        word_cost = estimate_tokens(text[pos:end])
        if cost + word_cost > limit and pos > start:
            pieces.append(text[start:pos])
            start, cost = pos, 0
        if word_cost > limit:  # one word over the limit by itself: no boundary inside it to cut at
            *whole, last = hard_split(text[pos:end], limit)
            pieces.extend(whole)
            start, cost = end - len(last), estimate_tokens(last)
        else:
            cost += word_cost
        pos = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def pack_lines(lines: list[str], room: int) -> list[list[str]]:
    """Consecutive lines grouped so that each group costs at most ``room`` tokens (a newline each); a line
    longer than ``room`` is cut first (``split_line``). Always at least one (possibly empty) group."""
    groups: list[list[str]] = []
    current: list[str] = []
    cost = 0
    for line in lines:
        for part in split_line(line, room - 1) if estimate_tokens(line) + 1 > room else [line]:
            part_cost = estimate_tokens(part) + 1
            if current and cost + part_cost > room:
                groups.append(current)
                current, cost = [], 0
            current.append(part)
            cost += part_cost
    groups.append(current)
    return groups
