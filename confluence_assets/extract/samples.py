"""Documents of every extracted type, and the bad files, for the tests and ``bench/extract.py``.

Office files are written by the formats' own writers (python-docx, python-pptx, XlsxWriter, all in the
``attachments`` extra); PDFs are built by hand (no PDF writer is a dependency): Helvetica text in
FlateDecode content streams with a correct cross-reference table, which every reader opens. Each good
document carries a distinctive phrase, a heading or marker per unit, and a table whose rows must survive.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

from confluence_assets.extract.detect import DOCX_TYPE, PLAIN, PPTX_TYPE, XLSX_TYPE

TABLE = [["Region", "Owner", "Budget"], ["North", "Alice Moreau", "1200"], ["South", "Bongani Dlamini", "3400"]]


def _pdf_escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_bytes(
    pages: list[list[str]], *, encrypt: bytes | None = None, compress: bool = True, padding: int = 0
) -> bytes:
    """A PDF with one page per list, one text line per item (top to bottom, 14 pt apart; a line holding
    ``" | "`` is laid out as table cells side by side; ``padding`` adds that many bytes of an unused binary
    stream, as images would). ``encrypt`` adds a standard security handler whose
    user password is unknown (32 random bytes as /O and /U): readers must say the file is encrypted."""
    objects: list[bytes] = []
    kids = []
    font_id = 3
    for lines in pages:
        ops = [b"BT /F1 11 Tf"]
        y = 800
        for line in lines:
            cells = line.split(" | ")
            for column, cell in enumerate(cells):
                ops.append(b"1 0 0 1 %d %d Tm (%s) Tj" % (56 + column * 160, y, _pdf_escape(cell)))
            y -= 14
            if y < 40:
                break
        ops.append(b"ET")
        stream = b"\n".join(ops)
        header = b"<< /Length %d >>" % len(stream)
        if compress:
            stream = zlib.compress(stream)
            header = b"<< /Length %d /Filter /FlateDecode >>" % len(stream)
        objects.append(header + b"\nstream\n" + stream + b"\nendstream")
        content_id = 3 + len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R >>" % (font_id, content_id)
        )
        kids.append(3 + len(objects))
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), len(kids)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    everything = head + objects
    if padding:  # an unreferenced binary stream standing in for images and fonts
        everything.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (padding, random_bytes(padding)))
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(everything, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    trailer_extra = b""
    if encrypt is not None:
        offsets.append(out.tell())
        key = hashlib.sha256(encrypt).digest()
        out.write(
            b"%d 0 obj\n<< /Filter /Standard /V 2 /R 3 /Length 128 /P -3904 /O <%s> /U <%s> >>\nendobj\n"
            % (len(everything) + 1, key.hex().encode(), hashlib.sha256(key).digest().hex().encode())
        )
        trailer_extra = b" /Encrypt %d 0 R /ID [<%s> <%s>]" % (
            len(everything) + 1,
            key[:16].hex().encode(),
            key[:16].hex().encode(),
        )
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    size = len(offsets) + 1
    out.write(b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer_extra, xref))
    return out.getvalue()


def pdf_document(phrase: str, pages: int = 3) -> bytes:
    body = []
    for number in range(1, pages + 1):
        lines = [f"Section {number}: quarterly review", f"First paragraph of page {number}."]
        if number == 1:
            lines += [" | ".join(row) for row in TABLE]
        if number == min(2, pages):
            lines.append(f"The distinctive phrase is {phrase}.")
        lines.append(f"Last paragraph of page {number}.")
        body.append(lines)
    return pdf_bytes(body)


def docx_document(phrase: str, paragraphs: int = 3) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly review", level=1)
    document.add_paragraph("First paragraph before the table.")
    table = document.add_table(rows=len(TABLE), cols=len(TABLE[0]))
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Findings", level=2)
    document.add_paragraph(f"The distinctive phrase is {phrase}.")
    for number in range(paragraphs):
        document.add_paragraph(f"Filler paragraph {number} about budgets, owners and regions of the review.")
    document.add_paragraph("Last paragraph after everything.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_document(phrase: str, slides: int = 3) -> bytes:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[0])
    first.shapes.title.text = "Quarterly review"
    first.placeholders[1].text = "Opening slide subtitle"
    table_slide = deck.slides.add_slide(deck.slide_layouts[5])
    table_slide.shapes.title.text = "Budgets by region"
    shape = table_slide.shapes.add_table(len(TABLE), len(TABLE[0]), Inches(1), Inches(2), Inches(6), Inches(2))
    for r, row in enumerate(TABLE):
        for c, value in enumerate(row):
            shape.table.cell(r, c).text = value
    for number in range(max(1, slides - 2)):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Findings {number + 1}"
        slide.placeholders[1].text = f"The distinctive phrase is {phrase}." if number == 0 else f"Point {number}"
        slide.notes_slide.notes_text_frame.text = f"Speaker notes for findings {number + 1}."
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_document(phrase: str, rows: int = 20) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    budgets = book.add_worksheet("Budgets")
    for r, row in enumerate(TABLE):
        budgets.write_row(r, 0, [int(v) if v.isdigit() else v for v in row])
    for r in range(rows):
        budgets.write_row(len(TABLE) + r, 0, [f"Region {r}", f"Owner {r}", r * 10])
    notes = book.add_worksheet("Notes")
    notes.write_row(0, 0, ["Topic", "Note"])
    notes.write_row(1, 0, ["Summary", f"The distinctive phrase is {phrase}."])
    book.close()
    return out.getvalue()


def text_documents(phrase: str) -> dict[str, tuple[bytes, str]]:
    """file name -> (bytes, declared media type) for CSV, TXT, Markdown and HTML."""
    csv_text = "\r\n".join(",".join(row) for row in TABLE) + f'\r\nNotes,"{phrase}",0\r\n'
    html = (
        "<!DOCTYPE html><html><head><title>Review</title><style>p{color:red}</style></head><body>"
        "<h1>Quarterly review</h1><p>First paragraph.</p><table>"
        + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in TABLE)
        + f"</table><script>var hidden = 1;</script><p>The distinctive phrase is {phrase}.</p></body></html>"
    )
    markdown = f"# Quarterly review\n\nFirst paragraph.\n\n## Findings\n\nThe distinctive phrase is {phrase}.\n"
    return {
        "table.csv": (csv_text.encode(), "text/csv"),
        "notes.txt": (f"Plain notes.\nThe distinctive phrase is {phrase}.\nCafé crème.\n".encode("cp1252"), PLAIN),
        "readme.md": (markdown.encode(), "text/markdown"),
        "page.html": (html.encode(), "text/html"),
    }


def good_documents(phrase_prefix: str = "zebra") -> dict[str, tuple[bytes, str, str]]:
    """file name -> (bytes, declared media type, its distinctive phrase), one file of every extracted type."""
    made: dict[str, tuple[bytes, str, str]] = {}
    for name, (maker, declared) in {
        "report.pdf": (pdf_document, "application/pdf"),
        "report.docx": (docx_document, DOCX_TYPE),
        "deck.pptx": (pptx_document, PPTX_TYPE),
        "book.xlsx": (xlsx_document, XLSX_TYPE),
    }.items():
        phrase = f"{phrase_prefix} {name.split('.')[1]} marmalade"
        made[name] = (maker(phrase), declared, phrase)
    for name, (data, declared) in text_documents(f"{phrase_prefix} text kumquat").items():
        made[name] = (data, declared, f"{phrase_prefix} text kumquat")
    return made


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def zip_bomb_docx(inflated_bytes: int) -> bytes:
    """A zip that says it is a Word document ([Content_Types].xml and word/document.xml) whose document
    part inflates to ``inflated_bytes`` of zeros from a few hundred kilobytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Override PartName="/word/document.xml" ContentType="{DOCX_TYPE}.main+xml"/>'
            "</Types>",
        )
        with archive.open("word/document.xml", "w", force_zip64=inflated_bytes >= 1 << 31) as member:
            block = bytes(1 << 20)
            for _ in range(inflated_bytes >> 20):
                member.write(block)
    return out.getvalue()


def understated_zip(declared_size: int, actual_size: int) -> bytes:
    """A DOCX-looking zip whose word/document.xml says (in both headers) it inflates to ``declared_size``
    but inflates to ``actual_size``: the lie that a size check trusting the directory misses."""
    data = zip_bomb_docx(actual_size)
    real = struct.pack("<I", actual_size)
    fake = struct.pack("<I", declared_size)
    name = b"word/document.xml"
    patched = bytearray(data)
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := patched.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            at = start + size_offset
            if patched[name_at : name_at + len(name)] == name and patched[at : at + 4] == real:
                patched[at : at + 4] = fake
            start += 4
    return bytes(patched)


def padded_zip(data: bytes, padding: int, member: str = "media/padding.bin") -> bytes:
    """An Office file with an unreferenced, stored member of ``padding`` random bytes (as pictures would be)."""
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr(member, random_bytes(padding))
    return out.getvalue()


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def sparse_file(path: Path, size: int, head: bytes = b"%PDF-1.7\n") -> Path:
    """A file of ``size`` bytes that takes no disk space beyond its head (never written out)."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path


def random_bytes(size: int, seed: int = 1) -> bytes:
    return hashlib.shake_256(str(seed).encode()).digest(size) if size < 1 << 24 else os.urandom(size)
