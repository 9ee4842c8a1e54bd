"""Preprocessed storage HTML -> Markdown, with markdownify and a few overrides where it falls short.

The overrides: code blocks get a fence longer than any backtick run inside them and keep every line
verbatim; table cells keep their line breaks and lists as ``<br>`` and escape ``|`` so columns never
shift; ordered-list numbering is computed once per list (markdownify counts previous siblings for
every item, which is quadratic on long lists); an image is its label (``[image: label]``), not its URL.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter

from .links import LinkContext, file_name_in_url
from .references import References
from .rendered import prepare_macros
from .storage import StoragePreprocessor
from .xhtml import parse_storage

_BACKTICK_RUNS = re.compile(r"`{3,}")
_TILDE_RUNS = re.compile(r"~{3,}")
_LINE_WITH_CONTENT = re.compile(r"^(.*)", flags=re.MULTILINE)
_CELL_TAGS = ("td", "th")
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class ConfluenceMarkdownConverter(MarkdownConverter):
    class Options(MarkdownConverter.DefaultOptions):
        heading_style = "atx"
        bullets = "-"
        escape_underscores = False  # identifiers like snake_case are common and escapes only add noise
        table_infer_header = True  # the first row is the header; chunks repeat it

    def __init__(self, **options: object) -> None:
        super().__init__(**options)
        self._ol_numbers: dict[int, dict[int, int]] = {}

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        # An image in the text costs tokens, not meaning: it is its label (widgets._image chose it), never
        # its URL, which the metadata keeps (asset_links, external_links). "[image: label]" says what it
        # is in any reader; an empty-URL "![label]()" would render as a broken image.
        label = " ".join(str(el.get("alt") or "").split()) or file_name_in_url(str(el.get("src") or ""))
        label = self.escape(label, parent_tags).replace("[", "\\[").replace("]", "\\]")
        if _HEADINGS & parent_tags:  # a heading is a breadcrumb: the label alone
            return label
        return f"[image: {label}]" if label else "[image]"

    def convert_pre(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if not text.strip():
            return ""
        if "_inline" in parent_tags:
            return " " + " ".join(text.split()) + " "
        code = text.strip("\n")
        fence_char = "`"
        longest = max((len(m) for m in _BACKTICK_RUNS.findall(code)), default=0)
        if longest and not _TILDE_RUNS.search(code):
            fence_char, longest = "~", 0
        fence = fence_char * max(3, longest + 1)
        language = str(el.get("data-language") or "")
        return f"\n\n{fence}{language}\n{code}\n{fence}\n\n"

    # Table cells: one line per cell, breaks and list items kept as <br>, pipes escaped.

    def _cell(self, el: Tag, text: str) -> str:
        lines = [line.strip() for line in text.split("\n")]
        cell = "<br>".join(line for line in lines if line).replace("|", "\\|")
        return f" {cell} |"

    def convert_td(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return self._cell(el, text)

    def convert_th(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return self._cell(el, text)

    def convert_tr(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        # Tables are normalised beforehand (storage._normalise_table): equal widths, no spans, the
        # header row marked. markdownify's own version searches the row's subtree and siblings per row.
        row = "|" + text + "\n"
        if el.get("data-first-row"):
            width = sum(1 for c in el.children if isinstance(c, Tag) and c.name in _CELL_TAGS)
            row += "| " + " | ".join(["---"] * width) + " |\n"
        return row

    def _in_cell(self, parent_tags: set[str]) -> bool:
        return "td" in parent_tags or "th" in parent_tags

    def convert_p(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if self._in_cell(parent_tags):
            return "\n" + text.strip() + "\n"
        return super().convert_p(el, text, parent_tags)

    def convert_div(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if self._in_cell(parent_tags):
            return "\n" + text.strip() + "\n"
        return super().convert_div(el, text, parent_tags)

    def convert_br(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if self._in_cell(parent_tags):
            return "\n"
        return super().convert_br(el, text, parent_tags)

    def convert_li(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        text = (text or "").strip()
        if not text:
            return "\n"
        parent = el.parent
        if parent is not None and parent.name == "ol":
            start = str(parent.get("start") or "")
            bullet = f"{(int(start) if start.isdigit() else 1) + self._position(parent, el)}."
        else:
            bullet = self.options["bullets"][0]
        bullet += " "
        indent = " " * len(bullet)
        text = _LINE_WITH_CONTENT.sub(lambda m: indent + m.group(1) if m.group(1) else "", text)
        return bullet + text[len(bullet) :] + "\n"

    def _position(self, parent: Tag, el: Tag) -> int:
        numbers = self._ol_numbers.get(id(parent))
        if numbers is None:
            items = [c for c in parent.children if isinstance(c, Tag) and c.name == "li"]
            numbers = {id(item): n for n, item in enumerate(items)}
            self._ol_numbers[id(parent)] = numbers
        return numbers.get(id(el), 0)


def soup_to_markdown(soup: BeautifulSoup) -> str:
    return ConfluenceMarkdownConverter().convert_soup(soup)


def storage_to_markdown(xhtml: str, ctx: LinkContext) -> tuple[str, References]:
    """Convert one storage-format body; returns the Markdown and what it points at."""
    soup = parse_storage(xhtml)
    prepare_macros(soup, ctx, xhtml)
    refs = StoragePreprocessor(soup, ctx).run()
    return soup_to_markdown(soup), refs
