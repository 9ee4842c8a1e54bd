"""Text extraction from attachments (confluence_assets/extract): every supported type through the real
libraries in real worker subprocesses, the bad-file matrix in one batch with good files around it, and
the bounds: time limit (the worker is killed and replaced), memory limit (RLIMIT_AS; peak RSS measured
from /proc), file size, zip bombs, the text cap, and what happens without the ``attachments`` extra."""

from __future__ import annotations

import io
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest

from confluence_assets.extract import EXTRACTED, EXTRACTOR_VERSION, FAILED, SKIPPED, Extractor, Limits, detect_type
from confluence_assets.extract import samples as s
from confluence_assets.extract.pool import _vm_peaks

MB = 1024 * 1024


@pytest.fixture(scope="module")
def extractor():
    with Extractor(Limits()) as ex:
        yield ex


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("extract")


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _good(directory: Path) -> dict[str, tuple[Path, str, str]]:
    return {
        name: (s.write(directory, name, data), declared, phrase)
        for name, (data, declared, phrase) in s.good_documents().items()
    }


def test_every_supported_type_gives_its_phrase_units_and_table_rows(extractor, files):
    good = _good(files)
    modules_before = set(sys.modules)
    results = list(extractor.extract_many((path, name, declared) for name, (path, declared, _) in good.items()))
    by_name = {r.filename: r for r in results}
    assert [r.filename for r in results] == list(good)  # the items' order
    for name, (_path, _declared, phrase) in good.items():
        result = by_name[name]
        assert (result.status, result.reason) == (EXTRACTED, ""), (name, result.reason)
        assert phrase in _flat(result.text), (name, result.text[:400])
        assert result.chars == len(result.text) > 0 and result.extractor_version == EXTRACTOR_VERSION
        if not name.endswith((".txt", ".md")):  # those two carry no table
            assert re.search(r"North[^\n]*Alice Moreau[^\n]*1200", result.text), (name, result.text)  # one row
    pdf, deck, book = by_name["report.pdf"], by_name["deck.pptx"], by_name["book.xlsx"]
    assert (pdf.unit, pdf.units, deck.unit, deck.units, book.unit, book.units) == ("page", 3, "slide", 3, "sheet", 2)
    assert pdf.extractor.startswith("pypdfium2 ") and book.extractor.startswith("python-calamine ")
    # A chunk can say where it came from: the phrase sits under its page, slide or sheet heading.
    assert pdf.text.index("## Page 2") < pdf.text.index("zebra pdf marmalade") < pdf.text.index("## Page 3")
    assert deck.text.index("## Slide 3: Findings 1") < deck.text.index("zebra pptx marmalade")
    assert "Notes: Speaker notes for findings 1." in deck.text
    assert book.text.index("## Sheet: Notes") < book.text.index("Note: The distinctive phrase is zebra xlsx")
    assert "Row 2: Region: North | Owner: Alice Moreau | Budget: 1200\n" in book.text
    # Reading order is the document's: heading, paragraph, table, the later heading, the phrase.
    docx = by_name["report.docx"].text
    order = ["# Quarterly review", "First paragraph before", "| North | Alice Moreau | 1200 |", "## Findings", "zebra"]
    assert [docx.index(mark) for mark in order] == sorted(docx.index(mark) for mark in order), docx
    assert "| Region | Owner | Budget |\n| --- | --- | --- |" in docx
    html = by_name["page.html"].text
    assert "var hidden" not in html and "color:red" not in html and "# Quarterly review" in html
    assert "Café crème." in by_name["notes.txt"].text  # cp1252 bytes decoded
    assert by_name["table.csv"].text.startswith("Columns: Region | Owner | Budget\nRow 2: Region: North")
    # The parsing libraries run in the workers only: extracting imported none of them here.
    assert not {"pypdfium2", "python_calamine"} & (set(sys.modules) - modules_before)


def test_the_bad_file_matrix_fails_each_with_its_reason_and_the_batch_goes_on(extractor, files):
    good = s.pdf_document("zebra survivor")
    bad = [
        ("locked.pdf", s.pdf_bytes([["secret"]], encrypt=b"key"), "application/pdf", FAILED, "encrypted PDF"),
        ("broken.pdf", good[: len(good) // 2], "application/pdf", FAILED, "corrupt PDF: Failed to load document"),
        ("bomb.docx", s.zip_bomb_docx(300 * MB), s.DOCX_TYPE, FAILED, "zip bomb: members inflate to 300 MB"),
        ("liar-bomb.docx", s.understated_zip(1000, 5 * MB), s.DOCX_TYPE, FAILED,
         "zip bomb: a member inflates past the 1,000 bytes its directory declares"),
        ("locked.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "EncryptedPackage".encode("utf-16-le"),
         s.DOCX_TYPE, FAILED, "encrypted Office document (needs a password)"),  # Office's encryption: an OLE file
        ("picture.pdf", s.PNG_1PX, "application/pdf", FAILED,
         "declared application/pdf, detected image/png: not extractable"),
        ("photo.png", s.PNG_1PX, "image/png", SKIPPED, "image/png is not extracted"),
        ("empty.txt", b"", "text/plain", SKIPPED, "empty file"),
        ("random.bin", s.random_bytes(4096), "application/octet-stream", SKIPPED,
         "application/octet-stream is not extracted"),
        ("scan.pdf", s.pdf_bytes([[]]), "application/pdf", SKIPPED, "no text in this PDF (scanned or images only"),
    ]
    items = []
    for name, data, declared, _status, _reason in bad:
        items.append((s.write(files, name, data), name, declared))
        items.append((s.write(files, f"ok-{name}.pdf", good), f"ok-{name}.pdf", "application/pdf"))
    huge = s.sparse_file(files / "huge.pdf", 2 * 1024**3)  # 2 GB that take no disk: never written out
    items.append((huge, "huge.pdf", "application/pdf"))
    items.append((files / "gone.pdf", "gone.pdf", "application/pdf"))
    before = extractor.stats.worker_starts
    results = list(extractor.extract_many(items))
    outcomes = {r.filename: (r.status, r.reason) for r in results}
    for name, _data, _declared, status, reason in bad:
        assert outcomes[name][0] == status and outcomes[name][1].startswith(reason), (name, outcomes[name])
        assert outcomes[f"ok-{name}.pdf"] == (EXTRACTED, ""), name
        assert "zebra survivor" in next(r.text for r in results if r.filename == f"ok-{name}.pdf")
    assert outcomes["huge.pdf"] == (FAILED, "larger than the 50.0 MB limit (2.0 GB)")
    assert outcomes["gone.pdf"] == (FAILED, "file not found")
    assert all(not r.text for r in results if r.status != EXTRACTED)
    assert extractor.stats.worker_starts == before  # no bad file cost a worker


def test_a_file_that_lies_about_its_type_is_extracted_by_what_its_bytes_are(extractor, files):
    path = s.write(files, "minutes.pdf", s.docx_document("zebra disguised"))
    result = extractor.extract(path, "minutes.pdf", "application/pdf")
    assert result.status == EXTRACTED and "zebra disguised" in result.text
    assert result.detected_media_type == s.DOCX_TYPE
    assert result.reason == f"declared application/pdf, detected {s.DOCX_TYPE}"
    # No declared type: the name is the claim.
    path = s.write(files, "notes.xlsx", s.pdf_document("zebra renamed"))
    result = extractor.extract(path, "notes.xlsx", "application/octet-stream")
    assert result.status == EXTRACTED
    assert result.reason == f"declared {s.XLSX_TYPE} (by its name), detected application/pdf"


def test_workers_past_the_time_limit_are_killed_and_replaced_and_the_order_holds(files):
    slow = s.write(files, "long.pdf", s.pdf_bytes([[f"line {i} of page {n}" for i in range(50)] for n in range(3000)]))
    quick = [s.write(files, f"q{n}.pdf", s.pdf_document(f"zebra quick {n}")) for n in range(6)]
    items = [(slow, "slow.pdf", None)] + [(path, path.name, None) for path in quick[:3]] + [(slow, "slow2.pdf", None)]
    items += [(path, path.name, None) for path in quick[3:]]
    with Extractor(Limits(timeout_seconds=0.4)) as ex:
        assert ex.extract(quick[0], "warm-up.pdf", None).status == EXTRACTED  # workers up, imports paid
        pids = ex.worker_pids()
        results = list(ex.extract_many(items))
        assert not any(Path(f"/proc/{pid}").exists() for pid in set(pids) - set(ex.worker_pids()))
        assert ex.stats.worker_starts == 4 and len(ex.worker_pids()) == 2  # two killed, two started
        assert [r.filename for r in results] == [name for _path, name, _declared in items]
        for result in results:
            if result.filename.startswith("slow"):
                assert (result.status, result.reason) == (FAILED, "timed out after 0.4 s")
            else:
                assert result.status == EXTRACTED and f"zebra quick {result.filename[1]}" in result.text
        assert ex.stats.timeouts == 2
        # A caller that stops reading half-way: the next batch gets its own answers, none of the old ones.
        for _result in ex.extract_many([(slow, "abandoned.pdf", None)] + items[1:4]):
            break
        again = list(ex.extract_many([(path, path.name, None) for path in quick]))
        assert [(r.filename, r.status) for r in again] == [(path.name, EXTRACTED) for path in quick]
        assert all(f"zebra quick {n}" in r.text for n, r in enumerate(again))


def _huge_docx(xml_mb: int) -> bytes:
    """A DOCX whose document part is ``xml_mb`` MB of paragraphs (a few hundred KB zipped)."""
    source, out = io.BytesIO(s.docx_document("seed")), io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                head, tail = data.split(b"<w:body>")
                paragraph = b"<w:p><w:r><w:t>A paragraph that costs the parser its memory.</w:t></w:r></w:p>"
                data = head + b"<w:body>" + paragraph * (xml_mb * MB // len(paragraph)) + tail
            dst.writestr(info.filename, data)
    return out.getvalue()


def test_a_worker_past_the_memory_limit_fails_that_file_only_and_stays_under_it(files):
    limit = 256 * MB
    huge = s.write(files, "huge.docx", _huge_docx(40))
    quick = s.write(files, "after.pdf", s.pdf_document("zebra after the memory limit"))
    with Extractor(Limits(memory_bytes=limit, workers=1)) as ex:
        results = list(ex.extract_many([(huge, "huge.docx", s.DOCX_TYPE), (quick, "after.pdf", None)]))
        assert (results[0].status, results[0].reason) == (FAILED, "memory limit: needed more than 256.0 MB")
        assert results[1].status == EXTRACTED and "zebra after the memory limit" in results[1].text
        assert ex.stats.worker_starts == 2  # the worker that hit the limit was replaced
        # Measured, not assumed: the worker's own peak RSS and the pool's samples of /proc/<pid>/status.
        assert 100 * MB < results[0].worker_peak_rss_bytes < limit
        assert 0 < ex.stats.peak_worker_rss_bytes < limit


def test_workers_are_reused_and_their_peak_rss_stays_under_the_limit(extractor, files):
    good = _good(files)
    pids = extractor.worker_pids()
    items = [(path, name, declared) for name, (path, declared, _) in good.items()] * 5
    results = list(extractor.extract_many(items))
    assert len(results) == len(items) and all(r.status == EXTRACTED for r in results)
    assert extractor.worker_pids() == pids  # the libraries were imported once per worker, not per file
    peaks = [_vm_peaks(pid) for pid in pids]
    assert all(30 * MB < rss < extractor.limits.memory_bytes for rss, _vm in peaks), peaks
    assert all(vm <= extractor.limits.memory_bytes for _rss, vm in peaks), peaks  # RLIMIT_AS holds


def test_a_batch_is_read_lazily_a_few_files_ahead(extractor, files):
    path = s.write(files, "lazy.txt", b"zebra lazy\n")
    pulled = []

    def items():
        for number in range(100):
            pulled.append(number)
            yield path, f"lazy{number}.txt", "text/plain"

    results = extractor.extract_many(items())
    first = next(results)
    assert first.filename == "lazy0.txt" and len(pulled) <= 4 * extractor.limits.workers + 1
    assert sum(1 for _ in results) == 99 and len(pulled) == 100


def test_the_text_is_cut_at_the_limit(files):
    path = s.write(files, "long.txt", ("a line of text\n" * 10_000).encode())
    pdf = s.write(files, "forty.pdf", s.pdf_bytes([[f"page {n} line {i}" for i in range(40)] for n in range(40)]))
    with Extractor(Limits(max_text_chars=1000, workers=1)) as ex:
        result, cut_pdf = ex.extract_many([(path, "long.txt", "text/plain"), (pdf, "forty.pdf", None)])
    assert result.status == EXTRACTED and result.truncated and result.chars <= 1001
    assert result.reason == "text cut at 1,000 characters (limit)"
    assert result.text.startswith("a line of text\na line")
    # Cut on page 2, the PDF still says how many pages it has.
    assert (cut_pdf.status, cut_pdf.truncated, cut_pdf.unit, cut_pdf.units) == (EXTRACTED, True, "page", 40)
    assert "## Page 2" in cut_pdf.text and "## Page 3" not in cut_pdf.text and cut_pdf.chars <= 1001


def test_without_the_attachments_extra_the_binary_formats_are_skipped_with_the_install_hint(files, monkeypatch):
    # The worker starts with a sitecustomize that makes the extra's libraries unimportable.
    hide = files / "no-extra"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pypdfium2', 'docx', 'pptx', 'python_calamine'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(hide))
    good = _good(files)
    with Extractor(Limits(workers=1)) as ex:
        results = {r.filename: r for r in ex.extract_many((p, n, d) for n, (p, d, _) in good.items())}
    for name, label in (("report.pdf", "PDF"), ("report.docx", "DOCX"), ("deck.pptx", "PPTX"), ("book.xlsx", "XLSX")):
        hint = f"install confluence-assets[attachments] to extract {label}"
        assert (results[name].status, results[name].reason) == (SKIPPED, hint)
    assert all(results[n].status == EXTRACTED for n in ("table.csv", "notes.txt", "readme.md", "page.html"))


@pytest.mark.parametrize(
    ("data", "filename", "declared", "detected", "mismatch"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(16), "a.png", "image/png", "image/png", ""),
        (b"\xff\xd8\xff\xe0" + bytes(16), "a.jpg", "", "image/jpeg", ""),
        (b"\x1f\x8b\x08" + bytes(16), "a.gz", "application/gzip", "application/gzip", ""),
        (b"\x7fELF" + bytes(16), "report.pdf", "application/pdf", "application/x-executable",
         "declared application/pdf, detected application/x-executable"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "EncryptedPackage".encode("utf-16-le"), "a.docx", s.DOCX_TYPE,
         "application/x-ooxml-encrypted", ""),
        (b"Region,Owner\r\nNorth,Alice\r\n", "budget.csv", "application/vnd.ms-excel", "text/csv", ""),
        (b"# Title\n\ntext\n", "notes.md", "text/plain", "text/markdown", ""),  # text/plain: any text
        (b"# Title\n\ntext\n", "notes.txt", "text/plain", "text/plain", ""),
        (b"# Title\n\ntext\n", "notes.md", "", "text/markdown", ""),
        (b"\xef\xbb\xbf<!DOCTYPE html><html><body>x</body></html>", "page.txt", "text/plain", "text/html", ""),
        (b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "logo.svg", "image/svg+xml", "image/svg+xml", ""),
        (b"%PDF-1.7\n", "x.bin", "application/octet-stream", "application/pdf", ""),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "a.webp", "image/webp", "image/webp", ""),
    ],
)
def test_types_are_detected_from_the_bytes(tmp_path, data, filename, declared, detected, mismatch):
    path = s.write(tmp_path, "file", data)
    found = detect_type(path, filename, declared)
    assert (found.media_type, found.mismatch) == (detected, mismatch)


def test_office_zips_are_told_apart_by_their_main_part(tmp_path):
    for data, expected in ((s.docx_document("x"), s.DOCX_TYPE), (s.pptx_document("x"), s.PPTX_TYPE),
                           (s.xlsx_document("x"), s.XLSX_TYPE)):
        detected = detect_type(s.write(tmp_path, "upload.zip", data), "upload.zip", "application/zip")
        assert (detected.media_type, detected.mismatch) == (expected, "")
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("word/readme.txt", "not a document")
    assert detect_type(s.write(tmp_path, "a.docx", plain_zip.getvalue()), "a.docx", s.DOCX_TYPE).media_type == (
        "application/zip"
    )


def test_the_sandbox_attachment_files_extract_as_the_sandbox_means_them(extractor, files):
    sandbox_files = pytest.importorskip("confluence_assets.sandbox.files")
    items = []
    kinds = sandbox_files.GOOD_KINDS
    good = [sandbox_files.good_file(kind, f"sandbox-{kind}", f"zebra sandbox {kind}") for kind in kinds]
    for sample in good + sandbox_files.bad_files("zebra never", huge_size=2 * 1024**3):
        path = files / sample.filename
        if sample.blob.size > 64 * MB:
            s.sparse_file(path, sample.blob.size, head=b"")
        else:
            path.write_bytes(sample.blob.read())
        items.append((path, sample.filename, sample.media_type))
    results = {r.filename: r for r in extractor.extract_many(items)}
    for sample in good:
        result = results[sample.filename]
        assert result.status == EXTRACTED and sample.phrase in _flat(result.text), (sample.filename, result.reason)
    expected = {
        "locked.pdf": (FAILED, "encrypted PDF"),
        "broken.pdf": (FAILED, "corrupt PDF"),
        "bomb.docx": (FAILED, "zip bomb"),
        "liar.docx": (EXTRACTED, f"declared {s.DOCX_TYPE}, detected application/pdf"),
        "picture.pdf": (FAILED, "declared application/pdf, detected image/png: not extractable"),
        "photo.png": (SKIPPED, "image/png is not extracted"),
        "bundle.zip": (SKIPPED, "application/zip is not extracted"),
        "huge.bin": (FAILED, "larger than the 50.0 MB limit"),
    }
    for name, (status, reason) in expected.items():
        assert results[name].status == status and results[name].reason.startswith(reason), (name, results[name].reason)


def test_limits_are_validated():
    with pytest.raises(ValueError, match="timeout_seconds"):
        Limits(timeout_seconds=0)
    with pytest.raises(ValueError, match="workers"):
        Limits(workers=0)
    assert os.cpu_count() and Limits().workers == 2
