"""Parsing storage XHTML with BeautifulSoup, and the element helpers every rewrite uses.

Parsing first inlines CDATA and keeps unknown entities as written (html.parser's handling of both differs
between Python releases); helpers stay linear in page size: bounded text reads, direct-child lookups,
in-place renames, and an iterative flattening of subtrees nested deeper than markdownify can recurse.
"""

from __future__ import annotations

import html
import html.entities
import mimetypes
import re

from bs4 import BeautifulSoup, NavigableString, Tag

from .elements import BLOCK_TAGS, LANGUAGE_ALIASES

MAX_DEPTH = 80


def inline_cdata(xhtml: str) -> str:
    """Replace CDATA sections with escaped text.

    html.parser's CDATA handling differs between Python releases (recent ones read ``<![CDATA[`` outside
    SVG/MathML as a bogus comment ending at the first ``>``), so code bodies are turned into ordinary
    escaped text first; parsing then yields them verbatim. One linear scan with str.find.
    """
    if "<![CDATA[" not in xhtml:
        return xhtml
    out: list[str] = []
    pos = 0
    while (start := xhtml.find("<![CDATA[", pos)) >= 0:
        end = xhtml.find("]]>", start + 9)
        out.append(xhtml[pos:start])
        if end < 0:  # unclosed: the rest is its text
            out.append(html.escape(xhtml[start + 9 :], quote=False))
            pos = len(xhtml)
            break
        out.append(html.escape(xhtml[start + 9 : end], quote=False))
        pos = end + 3
    out.append(xhtml[pos:])
    return "".join(out)


_INCOMPLETE_TAG = re.compile(r"<[A-Za-z/!?]")
_TAG_AS_TEXT = re.compile(r"</?(?:ac|ri):[^>]*>?")
_NAMED_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _keep_unknown_entity(m: re.Match) -> str:
    # html.parser hands "&bogus;" to BeautifulSoup, which gives it back as "&bogus": keep it as written.
    return m.group(0) if m.group(1) + ";" in html.entities.html5 else "&amp;" + m.group(0)[1:]


def parse_storage(xhtml: str) -> BeautifulSoup:
    text = _NAMED_ENTITY.sub(_keep_unknown_entity, inline_cdata(xhtml.replace("\r\n", "\n")))
    # html.parser hands an unterminated tag at the very end back as text ("<ri:page ri:content-title=...").
    lt = text.rfind("<")
    if lt > text.rfind(">") and _INCOMPLETE_TAG.match(text, lt):
        text = text[:lt]
    soup = BeautifulSoup(text, "html.parser")
    # Markup html.parser could not read as a tag also comes back as text; outside code it is debris.
    for string in soup.find_all(string=_TAG_AS_TEXT):
        if string.parent is not None and string.parent.name != "ac:plain-text-body":
            string.replace_with(_TAG_AS_TEXT.sub("", string))
    return soup


def text_of(tag: Tag | None, limit: int = 2000) -> str:
    """The start of an element's text, reading no further than ``limit`` characters.

    Bounded because malformed storage (an unclosed element) can make one element swallow the rest of
    the page, and reading all of it once per element would be quadratic.
    """
    if tag is None:
        return ""
    parts: list[str] = []
    size = 0
    for string in tag.strings:
        parts.append(string)
        size += len(string)
        if size >= limit:
            break
    return "".join(parts).strip()


def direct_child(tag: Tag, name: str) -> Tag | None:
    """A direct child by name. Only direct: a descendant search per element is quadratic on nesting;
    bodies that are not where they belong are renamed to plain elements by the generic pass instead."""
    return tag.find(name, recursive=False)


def ri_child(tag: Tag) -> Tag | None:
    for child in tag.children:
        if isinstance(child, Tag) and child.name.startswith("ri:"):
            return child
    return None


def reset(tag: Tag, name: str, **attrs: str) -> Tag:
    """Turn ``tag`` into another element in place (O(1), unlike unwrap/replace of its children)."""
    tag.name = name
    tag.prefix = None
    tag.attrs = dict(attrs)
    return tag


def int_attr(tag: Tag, name: str) -> int:
    value = str(tag.get(name) or "").strip()
    return max(1, min(1000, int(value))) if value.isdigit() else 1


def code_language(raw: str) -> str:
    lang = re.sub(r"[^A-Za-z0-9_+#.-]", "", raw.strip().lower())
    return LANGUAGE_ALIASES.get(lang, lang)


def flatten_deep(soup: BeautifulSoup, max_depth: int) -> None:
    """Flatten every subtree that reaches deeper than ``max_depth`` into paragraphs of its text.

    Iterative (an explicit stack), so 10,000 nested elements cost no recursion here, and markdownify,
    which recurses per level, only ever sees ``max_depth`` levels. Code (``pre``) survives as code.
    """
    stack: list[tuple[Tag, int]] = [(soup, 0)]
    too_deep: list[Tag] = []
    while stack:
        node, depth = stack.pop()
        for child in node.children:
            if isinstance(child, Tag):
                if depth + 1 >= max_depth and any(isinstance(c, Tag) for c in child.children):
                    too_deep.append(child)
                else:
                    stack.append((child, depth + 1))
    for node in too_deep:
        _flatten(soup, node)


_FLATTEN_WRAPPERS = {
    "table": ("tr", "td"),
    "thead": ("tr", "td"),
    "tbody": ("tr", "td"),
    "tfoot": ("tr", "td"),
    "tr": ("td",),
    "ul": ("li",),
    "ol": ("li",),
}


def _flatten(soup: BeautifulSoup, node: Tag) -> None:
    parts: list[Tag] = []
    buffer: list[str] = []
    skip: set[int] = set()  # ids of the strings inside a kept <pre>

    def flush() -> None:
        text = " ".join("".join(buffer).split())
        buffer.clear()
        if text:
            p = soup.new_tag("p")
            p.string = text
            parts.append(p)

    for item in node.descendants:
        if isinstance(item, Tag):
            if item.name == "pre":
                flush()
                pre = soup.new_tag("pre", attrs={"data-language": item.get("data-language") or ""})
                pre.string = item.get_text()
                parts.append(pre)
                skip.update(id(s) for s in item.descendants if isinstance(s, NavigableString))
            elif item.name in BLOCK_TAGS:
                flush()
        elif type(item) is NavigableString:
            if id(item) not in skip:
                buffer.append(str(item))
    flush()
    node.clear()
    # The node keeps its name (a flattened cell stays a cell); structural elements get the wrappers
    # that make their new content valid where it is (rows and cells for tables, items for lists).
    container = node
    for name in _FLATTEN_WRAPPERS.get(node.name, ()):
        inner = soup.new_tag(name)
        container.append(inner)
        container = inner
    for part in parts:
        container.append(part)


def attachment_media_type(filename: str) -> str | None:
    return mimetypes.guess_type(filename)[0]
