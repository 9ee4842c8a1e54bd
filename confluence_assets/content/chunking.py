"""Markdown -> chunks that keep their context: section-aware, fence-safe, table-aware, stable.

How a page is cut:
1. ``blocks.scan`` splits the Markdown into headings, fenced code, tables and text blocks. A heading
   opens a section; every chunk carries the section's breadcrumb ``[page title, h1, h2, ...]``.
2. Each block of a section is a unit. A unit larger than the budget is split: prose by langchain's
   RecursiveCharacterTextSplitter (lines, sentences, words, characters; no stripping, so indentation
   survives), code by lines into pieces that are each a valid fenced block with the language repeated,
   tables between rows with the header rows repeated; a line longer than a chunk (a long table row) is
   cut between words, never inside a word or URL (pieces.split_line).
3. A section that does not fit one chunk is cut where the content says, not where the running size
   says: every unit gets a level from a CRC of its opening characters, and the run of units is split
   before the highest-level unit (nearest the middle on ties), recursively, until every piece fits.
   Cut points thus depend on the units' text, not on their positions, so editing one paragraph changes
   the hash of the chunk holding it (and the next chunk's overlap), not of every later chunk in the
   section.
4. A chunk that follows prose in the same section starts with the tail of that prose (the overlap,
   at most ``overlap_tokens`` and only where the budget allows).

What is embedded (and hashed): ``"<page title> > <h1> > ... \\n\\n<content>"`` — ``Chunk.embedding_text``.
Sizes are ``estimate_tokens`` of that text, which over-counts, so no chunk exceeds ``max_tokens``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ..tokens import estimate_tokens
from .blocks import Block, scan
from .pieces import hard_split, pack_lines
from .types import Chunk

DEFAULT_CHUNK_TOKENS = 800
DEFAULT_OVERLAP_TOKENS = 80
DEFAULT_MAX_TOKENS = 8191  # OpenAI text-embedding-3-* input limit
_JOIN = "\n\n"
_JOIN_TOKENS = 2  # each "\n" is a token for estimate_tokens
_MIN_LIMIT = 32  # below this the breadcrumb line leaves no room for text


@dataclass(slots=True)
class _Unit:
    own: str  # text of the page (a slice of the Markdown)
    tokens: int  # estimate of prefix + own + suffix, plus the join before it
    kind: str = "text"
    prefix: str = ""  # synthetic: repeated table header or re-opened fence
    suffix: str = ""  # synthetic: closing fence
    level: int = 0
    cut_after: bool = True  # may a chunk end after this unit?
    must_cut_after: bool = False  # must a chunk end after this unit?


@dataclass(slots=True)
class _Section:
    headings: list[str]
    heading: Block | None
    blocks: list[Block]
    lead: list[Block] = field(default_factory=list)  # empty parent headings carried into this section


def chunk_markdown(
    markdown: str,
    page_title: str,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[Chunk]:
    """Cut a page's Markdown into chunks; an empty page yields one chunk holding its title."""
    if min(chunk_tokens, max_tokens) < _MIN_LIMIT or overlap_tokens < 0:
        raise ValueError(f"chunk_tokens and max_tokens must be >= {_MIN_LIMIT}, overlap_tokens >= 0")
    title = page_title.strip() or "Untitled"
    limit = min(chunk_tokens, max_tokens)
    out: list[Chunk] = []
    for section in _sections(markdown, scan(markdown)):
        breadcrumb = [title, *section.headings]
        context = _context_line(breadcrumb, limit)
        budget = limit - estimate_tokens(context) - _JOIN_TOKENS  # >= 3/4 of limit - 2: context is capped
        units = _units(markdown, section, budget)
        previous: list[_Unit] | None = None
        for group in _cut(units, budget):
            prefix = ""
            if previous is not None and not group[0].prefix and previous[-1].kind == "text":
                room = budget - sum(u.tokens for u in group) - _JOIN_TOKENS
                tail = _tail(previous[-1].own, min(overlap_tokens, room))
                if tail:
                    prefix = tail + _JOIN
            out.append(_make_chunk(len(out), breadcrumb, context, title, prefix, group))
            previous = group
    if not out:
        breadcrumb = [title]
        out.append(_finish(0, breadcrumb, title, title, title, len(title), len(title)))  # no page text
    _check_limits(out, max_tokens)
    return out


def own_text(chunk: Chunk) -> str:
    """The part of a chunk that is page text: without overlap, repeated table header or added fences."""
    return chunk.content[chunk.own_start : chunk.own_end]


def reassemble(chunks: Iterable[Chunk]) -> str:
    """The page text back from its chunks (whitespace between blocks normalised)."""
    return "\n".join(own_text(c) for c in chunks)


# sections and units ----------------------------------------------------------------------------------


def _sections(markdown: str, blocks: Sequence[Block]) -> list[_Section]:
    sections: list[_Section] = []
    stack: list[tuple[int, str]] = []
    current = _Section([], None, [])
    for block in blocks:
        if block.kind == "heading":
            if current.heading is not None or current.blocks:
                sections.append(current)
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.title))
            current = _Section([t for _, t in stack], block, [])
        else:
            current.blocks.append(block)
    if current.heading is not None or current.blocks:
        sections.append(current)
    # A heading with nothing under it but deeper headings travels with the first of them, so
    # "# Install" / "## Linux" does not make a chunk of its own.
    merged: list[_Section] = []
    carry: list[Block] = []
    for n, section in enumerate(sections):
        section.lead = carry
        nxt = sections[n + 1] if n + 1 < len(sections) else None
        if (
            section.heading is not None
            and not section.blocks
            and nxt is not None
            and nxt.heading is not None
            and nxt.heading.level > section.heading.level
        ):
            carry = [*carry, section.heading]
            continue
        carry = []
        merged.append(section)
    return merged


def _context_line(breadcrumb: list[str], limit: int) -> str:
    context = " > ".join(" ".join(part.split()) for part in breadcrumb)
    cap = max(8, limit // 4)  # a pathological heading must not eat the chunk
    while estimate_tokens(context) > cap and len(context) > 1:
        context = context[: len(context) // 2]
    return context


def _units(markdown: str, section: _Section, budget: int) -> list[_Unit]:
    units: list[_Unit] = []
    headings = [*section.lead, section.heading] if section.heading is not None else section.lead
    for heading in headings:
        text = markdown[heading.start : heading.end]
        tokens = estimate_tokens(text) + _JOIN_TOKENS
        if tokens > budget:  # a heading longer than a chunk is just text
            units.extend(_Unit(p, estimate_tokens(p) + _JOIN_TOKENS) for p in _split_prose(text, budget))
        else:  # a heading never ends a chunk: it belongs with what follows it
            units.append(_Unit(text, tokens, kind="heading", cut_after=False))
    for block in section.blocks:
        text = markdown[block.start : block.end]
        tokens = estimate_tokens(text) + _JOIN_TOKENS
        if tokens <= budget:
            units.append(_Unit(text, tokens, kind=block.kind))
        elif block.kind == "code":
            units.extend(_split_code(markdown, block, budget))
        elif block.kind == "table":
            units.extend(_split_table(markdown, block, budget))
        else:
            units.extend(_Unit(piece, estimate_tokens(piece) + _JOIN_TOKENS) for piece in _split_prose(text, budget))
    units[-1].cut_after = True
    for unit in units:
        unit.level = _level(unit.own)
    return units


def _level(text: str) -> int:
    """How strongly a chunk wants to start at this unit: trailing zero bits of a CRC of its opening.

    Only the first 64 characters count, so an edit inside or at the end of a paragraph moves no cut
    point at all; an edit to its opening can move only the cut point right before it."""
    h = zlib.crc32(text[:64].encode("utf-8"))
    return 32 if h == 0 else (h & -h).bit_length() - 1


def _split_prose(text: str, budget: int) -> list[str]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=budget - _JOIN_TOKENS,
        chunk_overlap=0,  # overlap is added between chunks, where it is known and can be removed
        length_function=estimate_tokens,
        separators=["\n", "。", ". ", " ", ""],
        keep_separator="end",
        strip_whitespace=False,  # keeps indentation
    )
    pieces = [p for p in splitter.split_text(text) if p]
    if "".join(pieces) != text:  # never lose text, whatever the splitter does
        pieces = hard_split(text, budget - _JOIN_TOKENS)
    out: list[str] = []
    for piece in pieces:  # the splitter cannot cut below one separator-free run: force it
        if estimate_tokens(piece) + _JOIN_TOKENS > budget:
            out.extend(hard_split(piece, budget - _JOIN_TOKENS))
        else:
            out.append(piece)
    return out


def _split_code(markdown: str, block: Block, budget: int) -> list[_Unit]:
    """Pieces of one oversized fenced block, each a valid fenced block with the language repeated."""
    lines = markdown[block.start : block.end].split("\n")
    open_line = lines[0]
    body = lines[1:-1] if block.closed else lines[1:]
    close_line = lines[-1] if block.closed else block.line_prefix + block.fence[0] * len(block.fence)
    fence_cost = estimate_tokens(open_line) + estimate_tokens(close_line) + 2
    room = max(4, budget - _JOIN_TOKENS - fence_cost)
    groups = pack_lines(body, room)
    units: list[_Unit] = []
    for n, group in enumerate(groups):
        first, last = n == 0, n == len(groups) - 1
        own_lines = ([open_line] if first else []) + group + ([close_line] if last and block.closed else [])
        own = "\n".join(own_lines)
        prefix = "" if first else open_line + "\n"
        suffix = "" if last and block.closed else "\n" + close_line
        tokens = estimate_tokens(prefix + own + suffix) + _JOIN_TOKENS
        units.append(_Unit(own, tokens, kind="code", prefix=prefix, suffix=suffix, must_cut_after=not last))
    return units


def _split_table(markdown: str, block: Block, budget: int) -> list[_Unit]:
    """Pieces of one oversized table, cut between rows, each starting with the header rows."""
    header = markdown[block.start : block.header_end] if block.header_end > block.start else ""
    header_cost = estimate_tokens(header) + 1 if header else 0
    if header_cost > (budget - _JOIN_TOKENS) // 2:  # a header this wide cannot be repeated: rows only
        header, header_cost = "", 0
    rows_text = markdown[block.header_end + 1 if header else block.start : block.end]
    room = max(4, budget - _JOIN_TOKENS - header_cost)
    groups = pack_lines(rows_text.split("\n"), room)
    units: list[_Unit] = []
    for n, group in enumerate(groups):
        rows = "\n".join(group)
        if n == 0 and header:
            own, prefix = header + "\n" + rows, ""
        else:
            own, prefix = rows, (header + "\n" if header else "")
        tokens = estimate_tokens(prefix + own) + _JOIN_TOKENS
        units.append(_Unit(own, tokens, kind="table", prefix=prefix, must_cut_after=n < len(groups) - 1))
    return units


# cutting ---------------------------------------------------------------------------------------------


def _cut(units: list[_Unit], budget: int) -> list[list[_Unit]]:
    """Group a section's units into chunks of at most ``budget`` tokens at content-defined cut points."""
    runs: list[list[_Unit]] = []
    run: list[_Unit] = []
    for unit in units:
        run.append(unit)
        if unit.must_cut_after:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    groups: list[list[_Unit]] = []
    for run in runs:
        prefix_sums = [0]
        for unit in run:
            prefix_sums.append(prefix_sums[-1] + unit.tokens)
        stack = [(0, len(run))]  # half-open ranges, processed left to right
        while stack:
            lo, hi = stack.pop()
            if prefix_sums[hi] - prefix_sums[lo] <= budget or hi - lo == 1:
                groups.append(run[lo:hi])
                continue
            at = _cut_point(run, lo, hi)
            stack.append((at + 1, hi))
            stack.append((lo, at + 1))
    return groups


def _cut_point(run: list[_Unit], lo: int, hi: int) -> int:
    """The unit after which to cut [lo, hi): before the highest-level unit, nearest the middle on ties;
    never right after a heading."""
    middle = (lo + hi - 2) / 2
    best, best_key = lo, None
    for i in range(lo, hi - 1):
        if not run[i].cut_after:
            continue
        key = (run[i + 1].level, -abs(i - middle), -i)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def _tail(text: str, limit: int) -> str:
    """The end of ``text`` within ``limit`` tokens, starting at a line or word boundary."""
    if limit <= 0:
        return ""
    window = text[-limit * 8 :]  # no token is shorter than a char: bounds the work
    lines = window.split("\n")
    kept: list[str] = []
    cost = 0
    for line in reversed(lines):
        if line.lstrip().startswith("#"):
            break
        line_cost = estimate_tokens(line) + 1
        if cost + line_cost > limit:
            if not kept:  # the last line alone is too long: keep its last words
                words = line.split(" ")
                taken: list[str] = []
                for word in reversed(words):
                    word_cost = estimate_tokens(word) + 1
                    if cost + word_cost > limit:
                        break
                    taken.append(word)
                    cost += word_cost
                kept.append(" ".join(reversed(taken)))
            break
        kept.append(line)
        cost += line_cost
    return "\n".join(reversed(kept)).strip()


def _make_chunk(index: int, breadcrumb: list[str], context: str, title: str, prefix: str, group: list[_Unit]) -> Chunk:
    prefix = prefix + group[0].prefix
    own = _JOIN.join(u.own for u in group)
    content = prefix + own + group[-1].suffix
    return _finish(index, breadcrumb, context, title, content, len(prefix), len(prefix) + len(own))


def _finish(
    index: int, breadcrumb: list[str], context: str, title: str, content: str, own_start: int, own_end: int
) -> Chunk:
    embedding_text = context + _JOIN + content if context != content else content
    return Chunk(
        index=index,
        content=content,
        section_title=breadcrumb[-1],
        breadcrumb=breadcrumb,
        content_hash=hashlib.sha256(embedding_text.encode("utf-8")).hexdigest(),
        token_count=estimate_tokens(embedding_text),
        embedding_text=embedding_text,
        page_title=title,
        own_start=own_start,
        own_end=own_end,
    )


def _check_limits(chunks: list[Chunk], max_tokens: int) -> None:
    for chunk in chunks:
        if chunk.token_count > max_tokens:  # the accounting above makes this unreachable; say so loudly
            raise AssertionError(f"chunk {chunk.index} has {chunk.token_count} tokens > {max_tokens}")
