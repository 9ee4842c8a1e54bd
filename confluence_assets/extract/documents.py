"""PDF, DOCX, PPTX and XLSX, each with the library the comparison in README ("Dependencies") chose:
pypdfium2 (PDFium), python-docx, python-pptx and python-calamine. Imported only inside the worker
processes, and only when the ``attachments`` extra is installed."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from confluence_assets.extract.output import TextBuilder, cell_text, markdown_table, record_lines
from confluence_assets.extract.types import ExtractionFailed, Limits

HEADING_STYLE = re.compile(r"^(?:Heading|Überschrift|Titre|Titolo|Encabezado)\s*(\d)$", re.I)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text or type(error).__name__)[:160]


def extract_pdf(path: Path, out: TextBuilder, limits: Limits) -> None:
    import pypdfium2

    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as error:
        if "password" in str(error).lower():
            raise ExtractionFailed("encrypted PDF (needs a password)") from None
        raise ExtractionFailed(f"corrupt PDF: {_one_line(error)}") from None
    out.info.update(unit="page", units=len(document))
    try:
        for number in range(len(document)):
            page = document[number]
            textpage = page.get_textpage()
            try:
                text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
            finally:
                textpage.close()
                page.close()
            if text.strip():
                out.heading(f"Page {number + 1}")
                out.add(text)
    finally:
        document.close()


def _table_rows(table) -> list[list[str]]:
    """A table's rows with horizontally merged cells given once (python-docx repeats a merged cell)."""
    rows = []
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen.add(id(cell._tc))
            cells.append(cell_text(cell.text))
        rows.append(cells)
    return rows


def extract_docx(path: Path, out: TextBuilder, limits: Limits) -> None:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ExtractionFailed(f"corrupt DOCX: {_one_line(error)}") from None
    out.info["headings"] = 0
    style_names: dict[str | None, str] = {}  # python-docx resolves a style by scanning styles.xml each time
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            out.add(markdown_table(_table_rows(block)))
            continue
        text = block.text.strip()
        if not text:
            continue
        style_id = block._p.style
        if style_id not in style_names:
            style_names[style_id] = (block.style.name or "") if block.style is not None else ""
        style = style_names[style_id]
        level = 1 if style == "Title" else int(m.group(1)) if (m := HEADING_STYLE.match(style)) else 0
        if level:
            out.info["headings"] += 1
            out.heading(text, min(level, 6))
        elif style.startswith("List") or block._p.pPr is not None and block._p.pPr.numPr is not None:
            out.add("- " + text)
        else:
            out.add(text)
    # No unit: a .docx has no pages (the renderer paginates; docProps/app.xml's count is the writer's guess).


def _shape_blocks(shapes) -> list[tuple[int, int, str]]:
    """(top, left, text) of every shape with text, groups opened, for reading order by position."""
    blocks = []
    for shape in shapes:
        top, left = shape.top or 0, shape.left or 0
        if shape.shape_type is not None and shape.shape_type == 6:  # MSO_SHAPE_TYPE.GROUP
            blocks += _shape_blocks(shape.shapes)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell_text(cell.text) for cell in row.cells] for row in shape.table.rows]
            blocks.append((top, left, markdown_table(rows)))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines = []
            for paragraph in shape.text_frame.paragraphs:
                text = "".join(run.text for run in paragraph.runs).strip() or paragraph.text.strip()
                if text:
                    lines.append("  " * paragraph.level + ("- " if paragraph.level else "") + text)
            blocks.append((top, left, "\n".join(lines)))
    return blocks


def extract_pptx(path: Path, out: TextBuilder, limits: Limits) -> None:
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        deck = pptx.Presentation(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ExtractionFailed(f"corrupt PPTX: {_one_line(error)}") from None
    out.info.update(unit="slide", units=len(deck.slides))
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None and title_shape.has_text_frame else ""
        out.heading(f"Slide {number}: {title}" if title else f"Slide {number}")
        title_id = title_shape.shape_id if title_shape is not None else None
        others = [shape for shape in slide.shapes if shape.shape_id != title_id]
        for _top, _left, text in sorted(_shape_blocks(others), key=lambda block: (block[0], block[1])):
            out.add(text)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                out.add("Notes: " + notes)


def extract_xlsx(path: Path, out: TextBuilder, limits: Limits) -> None:
    import python_calamine

    try:
        book = python_calamine.CalamineWorkbook.from_path(str(path))
    except python_calamine.PasswordError:
        raise ExtractionFailed("encrypted XLSX (needs a password)") from None
    except (python_calamine.CalamineError, ValueError) as error:
        raise ExtractionFailed(f"corrupt XLSX: {_one_line(error)}") from None
    worksheets = [meta for meta in book.sheets_metadata if str(meta.typ).endswith("WorkSheet")]
    out.info.update(unit="sheet", units=len(worksheets), rows=0)
    try:
        for meta in worksheets:
            out.heading(f"Sheet: {meta.name}")
            sheet = book.get_sheet_by_name(meta.name)
            header: list[str] = []
            row_number = sheet.start[0] if sheet.start else 0
            for row in sheet.iter_rows():
                row_number += 1
                cells = [cell_text(value) for value in row]
                if not any(cells):
                    continue
                if not header:
                    header = cells
                    out.add("Columns: " + " | ".join(header))
                    continue
                out.info["rows"] += 1
                out.add(f"Row {row_number}: " + record_lines(header, cells), line=True)
    except python_calamine.CalamineError as error:
        raise ExtractionFailed(f"corrupt XLSX: {_one_line(error)}") from None
    finally:
        book.close()
