"""Plain text, Markdown, CSV and HTML: the standard library, charset-normalizer (already installed with
requests) for legacy encodings, and BeautifulSoup + markdownify (the page conversion's own) for HTML."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

from confluence_assets.extract.output import TextBuilder, cell_text, record_lines
from confluence_assets.extract.types import Limits

SNIFF_BYTES = 64 * 1024
SNIFF_CHARS = 16 * 1024  # csv.Sniffer's regular expressions slow down sharply on longer samples
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DROPPED_HTML = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")


def read_text(path: Path, limits: Limits) -> tuple[str, str]:
    """The file decoded (at most what ``max_text_chars`` can use), and the encoding that decoded it."""
    with open(path, "rb") as handle:
        data = handle.read(limits.max_text_chars * 4)
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace"), encoding
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(data) - 3:  # cut inside a character at the read limit
            return data[: error.start].decode("utf-8"), "utf-8"
    encoding = _guess_encoding(data[:SNIFF_BYTES])
    return data.decode(encoding, errors="replace"), encoding


def _guess_encoding(sample: bytes) -> str:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - requests brings it
        return "cp1252"
    best = from_bytes(sample).best()
    return best.encoding if best is not None else "cp1252"


def extract_plain(path: Path, out: TextBuilder, limits: Limits) -> None:
    text, out.info["encoding"] = read_text(path, limits)
    out.add(text.replace("\r\n", "\n").replace("\r", "\n"))


def extract_csv(path: Path, out: TextBuilder, limits: Limits) -> None:
    text, out.info["encoding"] = read_text(path, limits)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:SNIFF_CHARS], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header: list[str] = []
    out.info.update(rows=0, delimiter=getattr(dialect, "delimiter", ","))
    for row in reader:
        cells = [cell_text(value) for value in row]
        if not any(cells):
            continue
        if not header:
            header = cells
            out.add("Columns: " + " | ".join(header))
            continue
        out.info["rows"] += 1
        out.add(f"Row {out.info['rows'] + 1}: " + record_lines(header, cells), line=True)


def _html_parser() -> str:
    """lxml's parser when the extra brought lxml (several times faster on large files), else Python's."""
    try:
        import lxml.etree  # noqa: F401
    except ImportError:
        return "html.parser"
    return "lxml"


def extract_html(path: Path, out: TextBuilder, limits: Limits) -> None:
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    text, out.info["encoding"] = read_text(path, limits)
    soup = BeautifulSoup(text, _html_parser())
    title = out.info["title"] = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup(DROPPED_HTML):
        element.decompose()
    body = soup.body or soup
    converter = MarkdownConverter(heading_style="ATX", bullets="-", strip=["img"], table_infer_header=True)
    markdown = converter.convert_soup(body)
    if title and title not in markdown[:500]:
        out.heading(title, 1)
    out.add(markdown)
