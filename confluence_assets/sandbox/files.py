"""Real files, made with the standard library, that the sandbox serves as attachment bytes.

Each good file carries a given text, so a test can put a distinctive phrase in it and search for it after
extraction: PDF (the text in a content stream, a valid cross-reference table), DOCX, PPTX and XLSX
(minimal but complete OOXML packages that Office and the python readers open), CSV, TXT, Markdown, HTML.
The bad files are what an extraction pipeline must survive: a PDF encrypted with the standard security
handler (RC4, 40-bit, a non-empty user password, so nothing is readable without it), a truncated PDF, a
zip bomb named ``.docx`` (a small zip whose member inflates to more than 1 GB), files that lie about
their type, an image, an archive, and a huge upload (:class:`GeneratedBlob`, produced lazily: a 2 GB
stream never exists in memory).

Blobs are what an attachment version holds: ``size`` is known up front (Content-Length) and ``chunks()``
streams the bytes.
"""

from __future__ import annotations

import hashlib
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from html import escape as html_escape
from io import BytesIO
from xml.sax.saxutils import escape as xml_escape

CHUNK = 64 * 1024
GIB = 1024**3

MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "png": "image/png",
    "zip": "application/zip",
    "bin": "application/octet-stream",
}


# --------------------------------------------------------------------------------------------- blobs


class Blob:
    """Bytes of one attachment version: a declared size and a stream of chunks."""

    size: int

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        raise NotImplementedError

    def read(self) -> bytes:
        """All bytes at once (tests; never called for generated huge blobs by the server)."""
        return b"".join(self.chunks())


@dataclass(frozen=True)
class BytesBlob(Blob):
    data: bytes

    @property
    def size(self) -> int:  # type: ignore[override]
        return len(self.data)

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        for start in range(0, len(self.data), chunk_size):
            yield self.data[start : start + chunk_size]

    def read(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class GeneratedBlob(Blob):
    """``size`` deterministic bytes made on demand from ``seed`` (a 2 GB upload costs no memory)."""

    size: int  # type: ignore[misc]
    seed: str = "sandbox"

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        block = _pattern(self.seed, chunk_size)
        left = self.size
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            left -= len(piece)
            yield piece


@lru_cache(maxsize=8)
def _pattern(seed: str, size: int) -> bytes:
    out = bytearray()
    digest = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        digest = hashlib.sha256(digest).digest()
        out += digest
    return bytes(out[:size])


# --------------------------------------------------------------------------------------------- PDF


def _pdf_text(value: str) -> str:
    """A PDF literal string in WinAnsi: backslash, parentheses escaped; what Latin-1 lacks becomes '?'."""
    data = value.encode("cp1252", errors="replace").decode("latin-1")
    return "(" + data.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _wrap(text: str, width: int = 90) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        words, line = paragraph.split(), ""
        for word in words:
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _pdf_pages(text: str, lines_per_page: int = 48) -> list[bytes]:
    lines = _wrap(text)
    pages = [lines[i : i + lines_per_page] for i in range(0, len(lines), lines_per_page)] or [[""]]
    streams = []
    for page_lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        for line in page_lines:
            ops.append(f"{_pdf_text(line)} Tj T*")
        ops.append("ET")
        streams.append("\n".join(ops).encode("latin-1"))
    return streams


class _Rc4:
    """RC4, for the PDF standard security handler (revision 2); not for anything that needs security."""

    def __init__(self, key: bytes) -> None:
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) % 256
            s[i], s[j] = s[j], s[i]
        self.s = s

    def crypt(self, data: bytes) -> bytes:
        s, i, j, out = self.s[:], 0, 0, bytearray()
        for byte in data:
            i = (i + 1) % 256
            j = (j + s[i]) % 256
            s[i], s[j] = s[j], s[i]
            out.append(byte ^ s[(s[i] + s[j]) % 256])
        return bytes(out)


_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _padded(password: str) -> bytes:
    return (password.encode("latin-1") + _PAD)[:32]


def pdf(text: str, *, title: str = "Sandbox document", user_password: str | None = None) -> bytes:
    """A PDF whose pages show ``text`` (Helvetica, wrapped, 48 lines a page). With ``user_password``, it
    is encrypted with the standard security handler (V1, R2, 40-bit RC4): unreadable without it."""
    streams = _pdf_pages(text)
    n_pages = len(streams)
    # Objects: 1 catalog, 2 pages, 3 font, 4 info, then per page: page, contents.
    page_ids = [5 + 2 * i for i in range(n_pages)]
    file_id = hashlib.md5(text.encode() + title.encode()).digest()  # noqa: S324 - a file id, not security
    key = None
    encrypt_obj = 5 + 2 * n_pages
    permissions = -44
    if user_password is not None:
        owner_key = hashlib.md5(_padded("sandbox-owner")).digest()[:5]  # noqa: S324 - the PDF algorithm
        owner_entry = _Rc4(owner_key).crypt(_padded(user_password))
        seed = _padded(user_password) + owner_entry + struct.pack("<i", permissions) + file_id
        key = hashlib.md5(seed).digest()[:5]  # noqa: S324 - the PDF algorithm (3.2)
        user_entry = _Rc4(key).crypt(_PAD)

    def crypt(obj_num: int, data: bytes) -> bytes:
        if key is None:
            return data
        obj_key = hashlib.md5(key + struct.pack("<i", obj_num)[:3] + b"\x00\x00").digest()[:10]  # noqa: S324
        return _Rc4(obj_key).crypt(data)

    def string(obj_num: int, value: str) -> bytes:
        if key is None:
            return _pdf_text(value).encode("latin-1")
        raw = value.encode("cp1252", errors="replace")
        return b"<" + crypt(obj_num, raw).hex().encode() + b">"

    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % n_pages,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Producer " + string(4, "confluence-assets sandbox") + b" /Title " + string(4, title) + b" >>",
    }
    for page_obj, stream in zip(page_ids, streams, strict=True):
        body = crypt(page_obj + 1, stream)
        objects[page_obj] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % (page_obj + 1)
        )
        objects[page_obj + 1] = b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream"
    if key is not None:
        objects[encrypt_obj] = (
            b"<< /Filter /Standard /V 1 /R 2 /Length 40 /O <"
            + owner_entry.hex().encode()
            + b"> /U <"
            + user_entry.hex().encode()
            + b"> /P %d >>" % permissions
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    size = max(objects) + 1
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num]
    ident = file_id.hex().encode()
    trailer = b"<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<%s> <%s>]" % (size, ident, ident)
    if key is not None:
        trailer += b" /Encrypt %d 0 R" % encrypt_obj
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypted_pdf(text: str, password: str = "sandbox-secret") -> bytes:  # noqa: S107 - a test file's password
    return pdf(text, user_password=password)


def truncated_pdf(text: str) -> bytes:
    """A real PDF cut short: no cross-reference table, no trailer, half a content stream."""
    data = pdf(text)
    return data[: int(len(data) * 0.6)]


# --------------------------------------------------------------------------------------------- OOXML

_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CORE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>{title}</dc:title>'
    "<dc:creator>confluence-assets sandbox</dc:creator>"
    '<dcterms:created xsi:type="dcterms:W3CDTF">2026-01-01T00:00:00Z</dcterms:created></cp:coreProperties>'
)
_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _content_types(overrides: dict[str, str]) -> str:
    parts = "".join(f'<Override PartName="{name}" ContentType="{kind}"/>' for name, kind in overrides.items())
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/docProps/core.xml" '
        f'ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>{parts}</Types>'
    )


def _rels(*targets: tuple[str, str, str]) -> str:
    rels = "".join(f'<Relationship Id="{rid}" Type="{kind}" Target="{target}"/>' for rid, kind, target in targets)
    return f'{_XML}<Relationships xmlns="{_PKG_REL}">{rels}</Relationships>'


def _package(main: str, parts: dict[str, str], types: dict[str, str], title: str) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = lambda name: zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))  # noqa: E731 - reproducible
        archive.writestr(info("[Content_Types].xml"), _content_types(types), zipfile.ZIP_DEFLATED)
        root_rels = _rels(
            ("rId1", f"{_REL}/officeDocument", main),
            ("rId2", f"{_PKG_REL}/metadata/core-properties", "docProps/core.xml"),
        )
        archive.writestr(info("_rels/.rels"), root_rels, zipfile.ZIP_DEFLATED)
        archive.writestr(info("docProps/core.xml"), _CORE.format(title=xml_escape(title)), zipfile.ZIP_DEFLATED)
        for name, content in parts.items():
            archive.writestr(info(name), content, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def docx(text: str, *, title: str = "Sandbox document") -> bytes:
    """A Word document: one paragraph per line of ``text``."""
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    paragraphs = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{xml_escape(line)}</w:t></w:r></w:p>' for line in text.splitlines()
    )
    document = f'{_XML}<w:document xmlns:w="{w}"><w:body>{paragraphs}<w:sectPr/></w:body></w:document>'
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    parts = {"word/document.xml": document, "word/_rels/document.xml.rels": _rels()}
    return _package("word/document.xml", parts, {"/word/document.xml": main}, title)


def xlsx(rows: list[list[str | int | float]], *, title: str = "Sandbox workbook", sheet: str = "Sheet1") -> bytes:
    """A workbook with one sheet of ``rows`` (strings inline, numbers as numbers)."""
    s = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    xml_rows = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{_column(c)}{r}"
            if isinstance(value, int | float) and not isinstance(value, bool):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            else:
                text = xml_escape(str(value))
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>')
        xml_rows.append(f'<row r="{r}">{"".join(cells)}</row>')
    worksheet = f'{_XML}<worksheet xmlns="{s}"><sheetData>{"".join(xml_rows)}</sheetData></worksheet>'
    workbook = (
        f'{_XML}<workbook xmlns="{s}" xmlns:r="{_REL}"><sheets>'
        f'<sheet name="{xml_escape(sheet)}" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    styles = (
        f'{_XML}<styleSheet xmlns="{s}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
        '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    )
    sml = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": _rels(
            ("rId1", f"{_REL}/worksheet", "worksheets/sheet1.xml"), ("rId2", f"{_REL}/styles", "styles.xml")
        ),
        "xl/worksheets/sheet1.xml": worksheet,
        "xl/styles.xml": styles,
    }
    types = {
        "/xl/workbook.xml": f"{sml}.sheet.main+xml",
        "/xl/worksheets/sheet1.xml": f"{sml}.worksheet+xml",
        "/xl/styles.xml": f"{sml}.styles+xml",
    }
    return _package("xl/workbook.xml", parts, types, title)


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_EMPTY_TREE = (
    '<p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr>'
    "<p:grpSpPr/>{shapes}</p:spTree></p:cSld>"
)
_THEME = (
    f'{_XML}<a:theme xmlns:a="{_A}" name="Sandbox"><a:themeElements><a:clrScheme name="Sandbox">'
    '<a:dk1><a:srgbClr val="000000"/></a:dk1><a:lt1><a:srgbClr val="FFFFFF"/></a:lt1>'
    '<a:dk2><a:srgbClr val="1F497D"/></a:dk2><a:lt2><a:srgbClr val="EEECE1"/></a:lt2>'
    + "".join(f'<a:accent{i}><a:srgbClr val="4F81BD"/></a:accent{i}>' for i in range(1, 7))
    + '<a:hlink><a:srgbClr val="0000FF"/></a:hlink><a:folHlink><a:srgbClr val="800080"/></a:folHlink>'
    '</a:clrScheme><a:fontScheme name="Sandbox"><a:majorFont><a:latin typeface="Calibri"/><a:ea typeface=""/>'
    '<a:cs typeface=""/></a:majorFont><a:minorFont><a:latin typeface="Calibri"/><a:ea typeface=""/>'
    '<a:cs typeface=""/></a:minorFont></a:fontScheme><a:fmtScheme name="Sandbox"><a:fillStyleLst>'
    + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3
    + "</a:fillStyleLst><a:lnStyleLst>"
    + '<a:ln w="9525"><a:solidFill><a:schemeClr val="phClr"/></a:solidFill></a:ln>' * 3
    + "</a:lnStyleLst><a:effectStyleLst>"
    + "<a:effectStyle><a:effectLst/></a:effectStyle>" * 3
    + "</a:effectStyleLst><a:bgFillStyleLst>"
    + '<a:solidFill><a:schemeClr val="phClr"/></a:solidFill>' * 3
    + "</a:bgFillStyleLst></a:fmtScheme></a:themeElements></a:theme>"
)


def pptx(slides: list[str], *, title: str = "Sandbox deck") -> bytes:
    """A presentation with one text box per slide (a slide master, a layout and a theme, as PowerPoint
    requires)."""
    ns = f'xmlns:a="{_A}" xmlns:r="{_REL}" xmlns:p="{_P}"'
    pml = "application/vnd.openxmlformats-officedocument.presentationml"
    parts: dict[str, str] = {}
    types: dict[str, str] = {"/ppt/presentation.xml": f"{pml}.presentation.main+xml"}
    slide_ids, pres_rels = [], [("rId1", f"{_REL}/slideMaster", "slideMasters/slideMaster1.xml")]
    for i, text in enumerate(slides or [""], start=1):
        paragraphs = "".join(
            f'<a:p><a:r><a:rPr lang="en-US"/><a:t>{xml_escape(line)}</a:t></a:r></a:p>'
            for line in text.splitlines() or [""]
        )
        shape = (
            '<p:sp><p:nvSpPr><p:cNvPr id="2" name="Text 1"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
            '<p:spPr><a:xfrm><a:off x="457200" y="457200"/><a:ext cx="8229600" cy="5029200"/></a:xfrm>'
            '<a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr>'
            f'<p:txBody><a:bodyPr wrap="square"/><a:lstStyle/>{paragraphs}</p:txBody></p:sp>'
        )
        parts[f"ppt/slides/slide{i}.xml"] = f"{_XML}<p:sld {ns}>{_EMPTY_TREE.format(shapes=shape)}</p:sld>"
        parts[f"ppt/slides/_rels/slide{i}.xml.rels"] = _rels(
            ("rId1", f"{_REL}/slideLayout", "../slideLayouts/slideLayout1.xml")
        )
        types[f"/ppt/slides/slide{i}.xml"] = f"{pml}.slide+xml"
        slide_ids.append(f'<p:sldId id="{255 + i}" r:id="rId{i + 1}"/>')
        pres_rels.append((f"rId{i + 1}", f"{_REL}/slide", f"slides/slide{i}.xml"))
    theme_rid = f"rId{len(pres_rels) + 1}"
    pres_rels.append((theme_rid, f"{_REL}/theme", "theme/theme1.xml"))
    parts["ppt/presentation.xml"] = (
        f'{_XML}<p:presentation {ns}><p:sldMasterIdLst><p:sldMasterId id="2147483648" r:id="rId1"/>'
        f"</p:sldMasterIdLst><p:sldIdLst>{''.join(slide_ids)}</p:sldIdLst>"
        '<p:sldSz cx="9144000" cy="6858000" type="screen4x3"/><p:notesSz cx="6858000" cy="9144000"/>'
        "</p:presentation>"
    )
    parts["ppt/_rels/presentation.xml.rels"] = _rels(*pres_rels)
    color_map = (
        '<p:clrMap bg1="lt1" tx1="dk1" bg2="lt2" tx2="dk2" accent1="accent1" accent2="accent2" '
        'accent3="accent3" accent4="accent4" accent5="accent5" accent6="accent6" hlink="hlink" folHlink="folHlink"/>'
    )
    parts["ppt/slideMasters/slideMaster1.xml"] = (
        f"{_XML}<p:sldMaster {ns}>{_EMPTY_TREE.format(shapes='')}{color_map}"
        '<p:sldLayoutIdLst><p:sldLayoutId id="2147483649" r:id="rId1"/></p:sldLayoutIdLst></p:sldMaster>'
    )
    parts["ppt/slideMasters/_rels/slideMaster1.xml.rels"] = _rels(
        ("rId1", f"{_REL}/slideLayout", "../slideLayouts/slideLayout1.xml"),
        ("rId2", f"{_REL}/theme", "../theme/theme1.xml"),
    )
    parts["ppt/slideLayouts/slideLayout1.xml"] = (
        f'{_XML}<p:sldLayout {ns} type="blank">{_EMPTY_TREE.format(shapes="")}'
        "<p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>"
    )
    parts["ppt/slideLayouts/_rels/slideLayout1.xml.rels"] = _rels(
        ("rId1", f"{_REL}/slideMaster", "../slideMasters/slideMaster1.xml")
    )
    parts["ppt/theme/theme1.xml"] = _THEME
    types.update(
        {
            "/ppt/slideMasters/slideMaster1.xml": f"{pml}.slideMaster+xml",
            "/ppt/slideLayouts/slideLayout1.xml": f"{pml}.slideLayout+xml",
            "/ppt/theme/theme1.xml": "application/vnd.openxmlformats-officedocument.theme+xml",
        }
    )
    return _package("ppt/presentation.xml", parts, types, title)


# --------------------------------------------------------------------------------------------- text formats


def csv_file(rows: list[list[str | int | float]]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)  # RFC 4180 line ends, as Excel writes them
    return out.getvalue().encode()


def txt(text: str) -> bytes:
    return text.encode()


def markdown(text: str, *, title: str = "Sandbox notes") -> bytes:
    return f"# {title}\n\n{text}\n".encode()


def html(text: str, *, title: str = "Sandbox page") -> bytes:
    body = "".join(f"<p>{html_escape(line)}</p>" for line in text.splitlines())
    page = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html_escape(title)}</title>'
    return (page + f"</head><body><h1>{html_escape(title)}</h1>{body}</body></html>\n").encode()


# --------------------------------------------------------------------------------------------- binaries


def png(width: int = 4, height: int = 4, rgb: tuple[int, int, int] = (32, 96, 160)) -> bytes:
    """A real (tiny) PNG: one colour, 8-bit RGB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def zip_archive(members: dict[str, bytes]) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


@lru_cache(maxsize=2)
def zip_bomb_docx(inflated: int = 1100 * 1024 * 1024) -> bytes:
    """A ``.docx``-shaped zip (content types, rels) whose ``word/document.xml`` inflates to ``inflated``
    bytes of zeros (1.1 GB by default) from about 1 MB: each 1 MiB block is deflated once after a full
    flush, so the same compressed bytes repeat. The sizes and CRC in the headers are true."""
    block = 1024 * 1024
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(inflated, block)
    crc = 0
    zeros = bytes(block)
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    tail_compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_compressor.compress(bytes(rest)) + tail_compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(bytes(rest), crc)
    deflated = unit * count + tail
    main = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    small = {
        "[Content_Types].xml": _content_types({"/word/document.xml": main}).encode(),
        "_rels/.rels": _rels(("rId1", f"{_REL}/officeDocument", "word/document.xml")).encode(),
    }
    out = bytearray()
    central = bytearray()
    entries = [(name, zlib.crc32(data), _raw_deflate(data), len(data)) for name, data in small.items()]
    entries.append(("word/document.xml", crc, deflated, inflated))
    for name, crc32, payload, size in entries:
        encoded = name.encode()
        offset = len(out)
        fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x5C21, crc32, len(payload), size)
        out += b"PK\x03\x04" + fields + struct.pack("<HH", len(encoded), 0) + encoded + payload
        central += (
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset)
            + encoded
        )
    directory = len(out)
    out += central
    out += b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(entries), len(entries), len(central), directory, 0)
    return bytes(out)


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


# --------------------------------------------------------------------------------------------- sets


@dataclass(frozen=True)
class SampleFile:
    """One file to attach: its name, media type as uploaded, bytes, and the phrase a search should find
    (None for files nothing can be extracted from). ``problem`` names what is wrong with a bad file."""

    filename: str
    media_type: str
    blob: Blob
    phrase: str | None = None
    problem: str | None = None


def good_file(kind: str, stem: str, phrase: str, filler: str = "") -> SampleFile:
    """A valid file of ``kind`` (pdf, docx, pptx, xlsx, csv, txt, md, html) carrying ``phrase``."""
    text = f"{filler}\n{phrase}\n{filler}".strip()
    makers = {
        "pdf": lambda: pdf(text, title=stem),
        "docx": lambda: docx(text, title=stem),
        "pptx": lambda: pptx([f"{stem}", text], title=stem),
        "xlsx": lambda: xlsx([["Item", "Note"], [stem, phrase], ["filler", filler or "-"]], title=stem),
        "csv": lambda: csv_file([["item", "note"], [stem, phrase], ["filler", filler or "-"]]),
        "txt": lambda: txt(text + "\n"),
        "md": lambda: markdown(text, title=stem),
        "html": lambda: html(text, title=stem),
    }
    if kind not in makers:
        raise ValueError(f"no generator for {kind!r}")
    return SampleFile(f"{stem}.{kind}", MEDIA_TYPES[kind], BytesBlob(makers[kind]()), phrase)


def corpus_file(filename: str, about: str) -> bytes | None:
    """Small real bytes for a generated corpus's attachment ``filename`` (by its extension) about its page
    (``about``: what a user's upload to that page would say). None for images and drawings (listed, never
    downloaded by the pipeline): the caller gives them generated bytes of a plausible size."""
    text = f"{filename}\n{about}"
    kind = filename.rsplit(".", 1)[-1].lower()
    makers = {
        "pdf": lambda: pdf(text, title=filename),
        "csv": lambda: csv_file([["item", "note"], *([filename, line] for line in text.splitlines())]),
        "xlsx": lambda: xlsx([["Item", "Note"], *([filename, line] for line in text.splitlines())], title=filename),
        "txt": lambda: txt(text + "\n"),
        "docx": lambda: docx(text, title=filename),
        "pptx": lambda: pptx([filename, text], title=filename),
        "md": lambda: markdown(text, title=filename),
        "html": lambda: html(text, title=filename),
    }
    return makers[kind]() if kind in makers else None


GOOD_KINDS = ("pdf", "docx", "pptx", "xlsx", "csv", "txt", "md", "html")


def bad_files(phrase: str = "unreachable phrase", *, huge_size: int = 2 * GIB) -> list[SampleFile]:
    """The bad-file matrix an extraction pipeline must record as failed (or list without extracting)."""
    return [
        SampleFile("locked.pdf", MEDIA_TYPES["pdf"], BytesBlob(encrypted_pdf(phrase)), None, "encrypted"),
        SampleFile("broken.pdf", MEDIA_TYPES["pdf"], BytesBlob(truncated_pdf(phrase)), None, "corrupt"),
        SampleFile("bomb.docx", MEDIA_TYPES["docx"], BytesBlob(zip_bomb_docx()), None, "zip bomb"),
        SampleFile("liar.docx", MEDIA_TYPES["docx"], BytesBlob(pdf(phrase)), None, "PDF bytes named .docx"),
        SampleFile("picture.pdf", MEDIA_TYPES["pdf"], BytesBlob(png()), None, "PNG bytes named .pdf"),
        SampleFile("photo.png", MEDIA_TYPES["png"], BytesBlob(png(16, 16)), None, "image"),
        SampleFile(
            "bundle.zip", MEDIA_TYPES["zip"], BytesBlob(zip_archive({"a.txt": phrase.encode()})), None, "archive"
        ),
        SampleFile("huge.bin", MEDIA_TYPES["bin"], GeneratedBlob(huge_size, "huge"), None, "too large"),
    ]
