"""The CQL subset sync code needs, parsed properly and evaluated over the site's documents.

A tokenizer and a recursive-descent parser build a tree; nothing is matched by regular expressions on
whole strings. Supported: fields ``space`` (``space.key``), ``type``, ``id`` (``content``), ``title``,
``text``, ``label``, ``ancestor``, ``parent``, ``container`` (of attachments and comments),
``lastModified`` and ``created``; operators ``= != > >= <
<= ~ !~ IN NOT IN``; ``AND``, ``OR``, ``NOT``, parentheses; ``ORDER BY field [ASC|DESC], ...``. Field
names and keywords are case-insensitive, as in Confluence.

Dates behave as Confluence's do, which is the trap: a literal (``"yyyy-MM-dd HH:mm"`` or
``"yyyy/MM/dd"``, no seconds) is wall time in the *site's* time zone, and it names a whole minute (or
day), so ``lastModified > "2026-03-01 10:05"`` means from 10:06 on and ``>=`` from 10:05:00.000.
Functions ``now("-1d")``, ``startOfDay()`` and ``endOfDay()`` give instants. ``~`` matches when every
word of the value is among the field's words (no stemming).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from confluence_assets.sandbox.clock import epoch_ms

if TYPE_CHECKING:
    from confluence_assets.sandbox.site import Attachment, Page, Site

    Doc = Page | Attachment


class CQLError(ValueError):
    """Invalid CQL. ``message`` is what Confluence answers with; ``detail`` says what was wrong."""

    def __init__(self, cql: str, detail: str) -> None:
        self.cql = cql
        self.detail = detail
        self.message = f"Could not parse cql : {cql}"
        super().__init__(f"{self.message} ({detail})")


# ----------------------------------------------------------------------------------------------- tokens

_PUNCT = "()=,!<>~\"'"
_OPERATORS = ("!=", ">=", "<=", "!~", "=", ">", "<", "~")
_KEYWORDS = {"and", "or", "not", "in", "order", "by", "asc", "desc"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word | string | op | ( | ) | , | eof
    text: str
    pos: int

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words


def tokenize(cql: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(cql)
    while i < n:
        ch = cql[i]
        if ch.isspace():
            i += 1
        elif ch in "(),":
            tokens.append(Token(ch, ch, i))
            i += 1
        elif ch in "\"'":
            j, buf = i + 1, []
            while j < n and cql[j] != ch:
                if cql[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(cql[j])
                j += 1
            if j >= n:
                raise CQLError(cql, f"unterminated string starting at {i}")
            tokens.append(Token("string", "".join(buf), i))
            i = j + 1
        elif op := next((o for o in _OPERATORS if cql.startswith(o, i)), None):
            tokens.append(Token("op", op, i))
            i += len(op)
        elif ch in _PUNCT:
            raise CQLError(cql, f"unexpected {ch!r} at {i}")
        else:
            j = i
            while j < n and not cql[j].isspace() and cql[j] not in _PUNCT:
                j += 1
            tokens.append(Token("word", cql[i:j], i))
            i = j
    tokens.append(Token("eof", "", n))
    return tokens


# ----------------------------------------------------------------------------------------------- tree


@dataclass(frozen=True, slots=True)
class Function:
    name: str
    args: tuple[str, ...]


Value = str | Function


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    op: str  # = != > >= < <= ~ !~ in "not in"
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Node


Node = Clause | And | Or | Not

_FIELD_ALIASES = {
    "space": "space",
    "space.key": "space",
    "type": "type",
    "id": "id",
    "content": "id",
    "content.id": "id",
    "title": "title",
    "text": "text",
    "label": "label",
    "ancestor": "ancestor",
    "parent": "parent",
    "container": "container",  # the page or blog post of an attachment or comment
    "lastmodified": "lastmodified",
    "created": "created",
}
_EQUALITY = {"=", "!=", "in", "not in"}
_FIELD_OPS = {
    "space": _EQUALITY,
    "type": _EQUALITY,
    "id": _EQUALITY,
    "label": _EQUALITY,
    "ancestor": _EQUALITY,
    "parent": _EQUALITY,
    "container": _EQUALITY,
    "title": _EQUALITY | {"~", "!~"},
    "text": {"~", "!~"},
    "lastmodified": {"=", "!=", ">", ">=", "<", "<="},
    "created": {"=", "!=", ">", ">=", "<", "<="},
}
_ORDER_FIELDS = {"lastmodified", "created", "title", "id", "type", "space"}


@dataclass(frozen=True)
class Query:
    cql: str
    where: Node
    order: tuple[tuple[str, bool], ...] = field(default=())  # (field, descending)

    @property
    def uses_clock(self) -> bool:
        """True when a date function (``now()``...) makes the result depend on the time of asking."""
        stack: list[Node] = [self.where]
        while stack:
            node = stack.pop()
            if isinstance(node, And | Or):
                stack.extend(node.parts)
            elif isinstance(node, Not):
                stack.append(node.part)
            elif any(isinstance(v, Function) for v in node.values):
                return True
        return False

    def run(self, site: Site, docs: Iterable[Doc]) -> list[Doc]:
        """The matching documents, sorted by ORDER BY (then id), before any permission filtering."""
        predicate = _compile(self.where, site, self.cql)
        return sorted((d for d in docs if predicate(d)), key=self.sort_key)

    def sort_key(self, doc: Doc) -> tuple:
        """A key that sorts ascending in result order; JSON-serialisable, so a cursor can carry it."""
        key: list[Any] = []
        for name, descending in self.order:
            if name in ("lastmodified", "created"):
                value: Any = epoch_ms(doc.modified_at if name == "lastmodified" else doc.created_at)
                key.append(-value if descending else value)
            elif name == "id":
                key.append(-doc.numeric_id if descending else doc.numeric_id)
            else:
                text = {"title": doc.title, "type": doc.kind, "space": doc.space_key}[name].lower()
                key.append(_reverse_text(text) if descending else text)
        key.append(doc.numeric_id)
        return tuple(key)


def _reverse_text(text: str) -> str:
    # Maps each character to its mirror so that ascending order of the result is descending order of
    # the text; the trailing maximum puts "abc" before its prefix "ab".
    return "".join(chr(0x10FFFF - ord(c)) for c in text) + chr(0x10FFFF)


# ----------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, cql: str) -> None:
        self.cql = cql
        self.tokens = tokenize(cql)
        self.i = 0

    def error(self, detail: str) -> CQLError:
        return CQLError(self.cql, detail)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {kind!r} at {self.tok.pos}, found {self.tok.text or 'end of query'!r}")
        return self.take()

    def query(self) -> Query:
        if self.tok.kind == "eof" or self.tok.is_keyword("order"):
            raise self.error("a query needs at least one condition")
        where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.tok.is_keyword("order"):
            self.take()
            if not self.tok.is_keyword("by"):
                raise self.error("expected BY after ORDER")
            self.take()
            while True:
                name = self.expect("word").text.lower()
                if name not in _ORDER_FIELDS:
                    raise self.error(f"cannot order by {name!r}")
                descending = False
                if self.tok.is_keyword("asc", "desc"):
                    descending = self.take().text.lower() == "desc"
                order.append((name, descending))
                if self.tok.kind != ",":
                    break
                self.take()
        if self.tok.kind != "eof":
            raise self.error(f"unexpected {self.tok.text!r} at {self.tok.pos}")
        return Query(self.cql, where, tuple(order))

    def or_expr(self) -> Node:
        parts = [self.and_expr()]
        while self.tok.is_keyword("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_expr(self) -> Node:
        parts = [self.unary()]
        while self.tok.is_keyword("and", "not"):
            if self.take().text.lower() == "not":  # "a NOT b" is CQL for "a AND NOT b"
                parts.append(Not(self.unary()))
            else:
                parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        if self.tok.is_keyword("not"):
            self.take()
            return Not(self.unary())
        if self.tok.kind == "(":
            self.take()
            node = self.or_expr()
            self.expect(")")
            return node
        return self.clause()

    def clause(self) -> Clause:
        tok = self.expect("word")
        name = _FIELD_ALIASES.get(tok.text.lower())
        if name is None or tok.text.lower() in _KEYWORDS:
            raise self.error(f"unknown or unsupported field {tok.text!r}")
        if self.tok.kind == "op":
            op = self.take().text
            values: tuple[Value, ...] = (self.value(),)
        elif self.tok.is_keyword("in", "not"):
            op = "in"
            if self.take().text.lower() == "not":
                if not self.tok.is_keyword("in"):
                    raise self.error("expected IN after NOT")
                self.take()
                op = "not in"
            self.expect("(")
            values = (self.value(),)
            while self.tok.kind == ",":
                self.take()
                values += (self.value(),)
            self.expect(")")
        else:
            raise self.error(f"expected an operator after {tok.text!r}")
        if op not in _FIELD_OPS[name]:
            raise self.error(f"operator {op!r} is not supported for field {tok.text!r}")
        return Clause(name, op, values)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "string":
            self.take()
            return tok.text
        if tok.kind == "word" and tok.text.lower() not in _KEYWORDS:
            self.take()
            if self.tok.kind == "(":
                self.take()
                args: list[str] = []
                while self.tok.kind != ")":
                    arg = self.take()
                    if arg.kind not in ("string", "word"):
                        raise self.error(f"bad function argument at {arg.pos}")
                    args.append(arg.text)
                    if self.tok.kind == ",":
                        self.take()
                self.expect(")")
                return Function(tok.text.lower(), tuple(args))
            return tok.text
        raise self.error(f"expected a value at {tok.pos}, found {tok.text or 'end of query'!r}")


def parse(cql: str) -> Query:
    """Parse CQL; raises :class:`CQLError` (Confluence's 400) when it is not valid."""
    return _Parser(cql or "").query()


# ----------------------------------------------------------------------------------------------- evaluation

_DATE = re.compile(r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?\s*$")
_OFFSET = re.compile(r"^\s*([+-]?\d+)\s*([yMwdhm])\s*$")
_TAGS = re.compile(r"<[^>]*>")
_WORDS = re.compile(r"\w+")


def words_of(text: str) -> frozenset[str]:
    """Lower-cased words of plain text or storage XHTML (tags dropped, entities decoded)."""
    if "<" in text:
        text = _TAGS.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return frozenset(_WORDS.findall(text.lower()))


def _interval(value: Value, site: Site, cql: str) -> tuple[datetime, datetime]:
    """The instants [start, end) a date value names, read in the site's time zone."""
    tz = site.timezone
    if isinstance(value, Function):
        now = site.clock.now().astimezone(tz)
        if value.name == "now":
            at = now
        elif value.name in ("startofday", "endofday"):
            at = now.replace(hour=0, minute=0, second=0, microsecond=0)
            if value.name == "endofday":
                at += timedelta(days=1)
        else:
            raise CQLError(cql, f"unsupported function {value.name}()")
        if value.args:
            at = _shift(at, value.args[0], cql)
        return at, at + timedelta(milliseconds=1)
    match = _DATE.match(value)
    if not match:
        raise CQLError(cql, f"{value!r} is not a date (yyyy-MM-dd HH:mm or yyyy/MM/dd)")
    year, month, day, hour, minute = match.groups()
    try:
        start = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=tz)
    except ValueError:
        raise CQLError(cql, f"{value!r} is not a valid date") from None
    return start, start + (timedelta(minutes=1) if hour is not None else timedelta(days=1))


def _shift(at: datetime, offset: str, cql: str) -> datetime:
    match = _OFFSET.match(offset)
    if not match:
        raise CQLError(cql, f"bad date offset {offset!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "y":
        return at.replace(year=at.year + amount)
    if unit == "M":
        month = at.month - 1 + amount
        return at.replace(year=at.year + month // 12, month=month % 12 + 1)
    units = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}
    return at + timedelta(**{units[unit]: amount})


def _text(value: Value, cql: str) -> str:
    if isinstance(value, Function):
        raise CQLError(cql, f"a function is not a valid value here: {value.name}()")
    return value


def _compile(node: Node, site: Site, cql: str) -> Callable[[Doc], bool]:
    if isinstance(node, And):
        parts = [_compile(p, site, cql) for p in node.parts]
        return lambda d: all(p(d) for p in parts)
    if isinstance(node, Or):
        parts = [_compile(p, site, cql) for p in node.parts]
        return lambda d: any(p(d) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.part, site, cql)
        return lambda d: not inner(d)
    return _compile_clause(node, site, cql)


# Content with labels, a parent and ancestors of its own (sandbox/nodes.py), unlike an attachment.
_CONTENT_KINDS = frozenset({"page", "blogpost", "folder", "whiteboard", "database", "embed"})


def _compile_clause(clause: Clause, site: Site, cql: str) -> Callable[[Doc], bool]:
    name, op = clause.field, clause.op

    if name in ("lastmodified", "created"):
        start, end = (epoch_ms(t) for t in _interval(clause.values[0], site, cql))

        def stamp(d: Doc) -> int:
            return epoch_ms(d.modified_at if name == "lastmodified" else d.created_at)

        tests: dict[str, Callable[[int], bool]] = {
            "=": lambda m: start <= m < end,
            "!=": lambda m: not start <= m < end,
            ">": lambda m: m >= end,
            ">=": lambda m: m >= start,
            "<": lambda m: m < start,
            "<=": lambda m: m < end,
        }
        test = tests[op]
        return lambda d: test(stamp(d))

    if op in ("~", "!~"):
        wanted = words_of(_text(clause.values[0], cql))
        positive = op == "~"
        return lambda d: (wanted <= site.words(d, name)) == positive

    values = [_text(v, cql) for v in clause.values]
    negate = op in ("!=", "not in")
    getter: Callable[[Doc], Iterable[str]]
    if name == "space":
        wanted = {v.lower() for v in values}
        getter = lambda d: (d.space_key.lower(),)  # noqa: E731
    elif name == "type":
        wanted = {v.lower() for v in values}
        getter = lambda d: (d.kind,)  # noqa: E731
    elif name == "id":
        wanted = set()
        for v in values:
            digits = v.removeprefix("att")
            if not digits.isdigit():
                raise CQLError(cql, f"{v!r} is not a content id")
            wanted.add(str(int(digits)))
        getter = lambda d: (str(d.numeric_id),)  # noqa: E731
    elif name == "title":
        wanted = {v.lower() for v in values}
        getter = lambda d: (d.title.lower(),)  # noqa: E731
    elif name == "label":
        wanted = {v.lower() for v in values}
        getter = lambda d: [label.name for label in d.labels] if d.kind in _CONTENT_KINDS else ()  # noqa: E731
    elif name == "parent":
        wanted = set(values)
        getter = lambda d: (d.parent_id,) if d.kind in _CONTENT_KINDS and d.parent_id else ()  # noqa: E731
    elif name == "container":  # attachments and comments are contained in their page or blog post
        wanted = set(values)
        getter = lambda d: (d.page_id,) if d.kind in ("attachment", "comment") else ()  # noqa: E731
    else:  # ancestor: for an attachment, its page and that page's ancestors
        wanted = set(values)

        def getter(d: Doc) -> Iterable[str]:
            if d.kind in _CONTENT_KINDS:  # pages, blog posts and tree nodes (folders & co.)
                return site.ancestor_ids(d.id)
            return [*site.ancestor_ids(d.page_id), d.page_id]

    return lambda d: any(v in wanted for v in getter(d)) != negate
