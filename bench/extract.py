"""Attachment text extraction: throughput per type through the worker pool, peak RSS, and the library
comparison behind README's "Attachments" rows.

    .venv/bin/python bench/extract.py [--files 200] [--max-mb 5] [--workers 2] [--seed 7] [--skip-compare]

Pool: a generated mix of ``--files`` files (PDF, DOCX, PPTX, XLSX, CSV, TXT, Markdown, HTML; sizes
log-uniform from 20 KB to ``--max-mb``; PDFs and Office files padded with binary parts as pictures
would be, about 40 KB a page or slide) through ``Extractor`` with the default limits: files/s, MB/s and
pages (slides, sheets) per second per type (from the workers' own per-file seconds), the wall time of the
batch, the peak RSS of the workers (from /proc) and of this process.

Compare: every candidate library that is importable here (the chosen ones are in the ``attachments``
extra; for the others, ``pip install pypdf pdfminer.six docx2python mammoth openpyxl`` in a scratch venv
and run this script from it with PYTHONPATH pointing at the repository) on the same files: the
distinctive phrase found, reading order kept, a table row kept on one line, seconds and MB/s on a large
file, installed size (the distribution and its requirements, from their RECORD files) and licence.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import math
import multiprocessing
import random
import re
import resource
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from confluence_assets.extract import EXTRACTED, Extractor, Limits  # noqa: E402
from confluence_assets.extract import samples as s  # noqa: E402
from confluence_assets.extract.pool import _vm_peaks  # noqa: E402

KB, MB = 1024, 1024 * 1024
KINDS = ("pdf", "docx", "pptx", "xlsx", "csv", "txt", "md", "html")
WORDS = "budget owner region review quarter forecast risk plan team milestone customer release".split()


def _sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_file(kind: str, size: int, rng: random.Random, phrase: str) -> bytes:
    """A file of ``kind`` near ``size`` bytes with ``phrase`` somewhere in its text."""
    if kind == "pdf":
        pages = max(1, size // (40 * KB))
        body = [[_sentence(rng) for _ in range(45)] for _ in range(pages)]
        body[pages // 2].append(f"The distinctive phrase is {phrase}.")
        data = s.pdf_bytes(body)
        return s.pdf_bytes(body, padding=max(0, size - len(data)))
    if kind in ("docx", "pptx"):
        units = max(1, size // (40 * KB))
        data = s.docx_document(phrase, paragraphs=units * 8) if kind == "docx" else s.pptx_document(phrase, units)
        folder = "word" if kind == "docx" else "ppt"
        return s.padded_zip(data, max(0, size - len(data)), f"{folder}/media/padding.bin")
    if kind == "xlsx":
        return s.xlsx_document(phrase, rows=max(10, size // 40))
    line_count = max(3, size // 80)
    lines = [_sentence(rng) for _ in range(line_count)]
    lines.insert(line_count // 2, f"The distinctive phrase is {phrase}.")
    if kind == "csv":
        rows = "".join(f"{i},{rng.choice(WORDS)},{line}\n" for i, line in enumerate(lines))
        return ("id,owner,note\n" + rows).encode()
    if kind == "md":
        sections = (f"## Section {i}\n\n{line}\n" if i % 20 == 0 else line + "\n" for i, line in enumerate(lines))
        return "".join(sections).encode()
    if kind == "html":
        return ("<!DOCTYPE html><html><body>" + "".join(f"<p>{line}</p>" for line in lines) + "</body></html>").encode()
    return "\n".join(lines).encode()


def _generate(job: tuple[Path, int, int, float]) -> tuple[Path, str, str]:
    folder, seed, number, max_mb = job
    rng = random.Random(seed * 1_000_003 + number)
    kind = KINDS[number % len(KINDS)]
    size = int(math.exp(rng.uniform(math.log(20 * KB), math.log(max_mb * MB))))
    name, phrase = f"file{number:04d}.{kind}", f"zebra {number} marmalade"
    return s.write(folder, name, make_file(kind, size, rng, phrase)), name, phrase


def bench_pool(args: argparse.Namespace, folder: Path) -> None:
    started = time.perf_counter()
    # Generated in child processes, so that this process's peak RSS is the pool's parent side only.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        made = list(pool.map(_generate, [(folder, args.seed, n, args.max_mb) for n in range(args.files)]))
    items = [(path, name, None) for path, name, _ in made]
    phrases = {name: phrase for _, name, phrase in made}
    total_mb = sum(path.stat().st_size for path, _, _ in items) / MB
    print(f"generated {len(items)} files, {total_mb:.0f} MB, in {time.perf_counter() - started:.1f} s")

    by_kind: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    peak_workers = 0
    limits = Limits(workers=args.workers)
    started = time.perf_counter()
    with Extractor(limits) as extractor:
        for result in extractor.extract_many(items):
            kind = result.filename.rsplit(".", 1)[1]
            row = by_kind[kind]
            row["files"] += 1
            row["mb"] += (folder / result.filename).stat().st_size / MB
            row["seconds"] += result.seconds
            row["units"] += result.details.get("rows", result.units)
            row["ok"] += result.status == EXTRACTED
            row["found"] += phrases[result.filename] in result.text
            row["truncated"] += result.truncated
            for pid in extractor.worker_pids():
                peak_workers = max(peak_workers, _vm_peaks(pid)[0])
        stats = extractor.stats
        wall = time.perf_counter() - started
    peak_workers = max(peak_workers, stats.peak_worker_rss_bytes)
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB
    print(f"\n{args.workers} workers, default limits: {len(items)} files, {total_mb:.0f} MB in {wall:.1f} s wall "
          f"({len(items) / wall:.1f} files/s, {total_mb / wall:.1f} MB/s); worker starts {stats.worker_starts}, "
          f"timeouts {stats.timeouts}, crashes {stats.crashes}")
    print(f"peak RSS: workers {peak_workers / MB:.0f} MB (limit {limits.memory_bytes // MB} MB), "
          f"this process {parent / MB:.0f} MB\n")
    print("| type | files | MB | extracted | phrase found | text cut | files/s | MB/s | units/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in KINDS:
        row = by_kind[kind]
        sec = row["seconds"] or 1e-9
        unit = {"pdf": "pages", "pptx": "slides", "xlsx": "rows", "csv": "rows"}.get(kind)
        units = f"{row['units'] / sec:.0f} {unit}/s" if unit else "-"
        print(f"| {kind} | {row['files']:.0f} | {row['mb']:.0f} | {row['ok']:.0f} | {row['found']:.0f} | "
              f"{row['truncated']:.0f} | {row['files'] / sec:.1f} | {row['mb'] / sec:.1f} | {units} |")


# -- the library comparison --------------------------------------------------------------------------

def pdf_pypdf(path):
    import pypdf

    return [page.extract_text() for page in pypdf.PdfReader(path).pages]


def pdf_pdfminer(path):
    from pdfminer.high_level import extract_text

    return extract_text(path).split("\f")[:-1]


def pdf_pypdfium2(path):
    import pypdfium2

    document = pypdfium2.PdfDocument(path)
    texts = []
    for page in document:
        textpage = page.get_textpage()
        texts.append(textpage.get_text_bounded())
        textpage.close()
    document.close()
    return texts


def docx_python_docx(path):
    import docx
    from docx.table import Table

    out = []
    for block in docx.Document(path).iter_inner_content():
        out += [" | ".join(c.text for c in r.cells) for r in block.rows] if isinstance(block, Table) else [block.text]
    return ["\n".join(out)]


def docx_docx2python(path):
    from docx2python import docx2python

    with docx2python(path) as result:
        return [result.text]


def docx_mammoth(path):
    import mammoth
    from markdownify import markdownify

    with open(path, "rb") as handle:
        return [markdownify(mammoth.convert_to_html(handle).value)]


def pptx_python_pptx(path):
    import pptx

    slides = []
    for slide in pptx.Presentation(path).slides:
        lines = []
        for shape in slide.shapes:
            if shape.has_text_frame:
                lines.append(shape.text_frame.text)
            elif getattr(shape, "has_table", False):
                lines += [" | ".join(c.text for c in row.cells) for row in shape.table.rows]
        slides.append("\n".join(lines))
    return slides


def pptx_stdlib(path):
    with zipfile.ZipFile(path) as archive:
        names = sorted((n for n in archive.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                       key=lambda n: int(re.findall(r"\d+", n)[0]))
        return ["\n".join(re.findall(r"<a:t>([^<]*)</a:t>", archive.read(n).decode())) for n in names]


def xlsx_openpyxl(path):
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sheets = [
        "\n".join(" | ".join("" if v is None else str(v) for v in row) for row in sheet.iter_rows(values_only=True))
        for sheet in book.worksheets
    ]
    book.close()
    return sheets


def xlsx_calamine(path):
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(path))
    return ["\n".join(" | ".join(str(v) for v in row) for row in book.get_sheet_by_name(n).to_python())
            for n in book.sheet_names]


CANDIDATES = {
    "pdf": [("pypdfium2", "pypdfium2", pdf_pypdfium2), ("pypdf", "pypdf", pdf_pypdf),
            ("pdfminer.six", "pdfminer.six", pdf_pdfminer)],
    "docx": [("python-docx", "python-docx", docx_python_docx), ("docx2python", "docx2python", docx_docx2python),
             ("mammoth", "mammoth", docx_mammoth)],
    "pptx": [("python-pptx", "python-pptx", pptx_python_pptx), ("stdlib zip + regex", "", pptx_stdlib)],
    "xlsx": [("python-calamine", "python-calamine", xlsx_calamine), ("openpyxl", "openpyxl", xlsx_openpyxl)],
}


def installed_mb(distribution: str, seen: set[str] | None = None) -> float:
    """The distribution's installed files and its (installed) requirements', from their RECORD files."""
    seen = set() if seen is None else seen
    key = re.sub(r"[-_.]+", "-", distribution).lower()
    if key in seen:
        return 0.0
    seen.add(key)
    try:
        dist = md.distribution(distribution)
    except md.PackageNotFoundError:
        return 0.0
    total = sum(f.size or 0 for f in dist.files or []) / MB
    for requirement in dist.requires or []:
        if "extra ==" in requirement:
            continue
        total += installed_mb(re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0], seen)
    return total


def licence(distribution: str) -> str:
    if not distribution:
        return "PSF (standard library)"
    meta = md.metadata(distribution)
    found = meta.get("License-Expression") or ""
    if not found:
        classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
        found = ", ".join(classifiers) or (meta.get("License") or "?").splitlines()[0][:40]
    return found


def large_file(kind: str, phrase: str) -> tuple[bytes, int]:
    if kind == "pdf":
        body = [[f"Line {i} of page {p} with words about budgets and owners." for i in range(50)] for p in range(300)]
        body[150].append(f"The distinctive phrase is {phrase}.")
        return s.pdf_bytes(body), 300
    if kind == "docx":
        return s.docx_document(phrase, paragraphs=5000), 5005  # paragraphs
    if kind == "pptx":
        return s.pptx_document(phrase, slides=200), 200
    return s.xlsx_document(phrase, rows=60000), 60005  # rows


def quality(kind: str, texts: list[str], phrase: str) -> tuple[bool, bool, bool]:
    joined = "\n".join(texts)
    flat = re.sub(r"\s+", " ", joined)
    marks = ["Quarterly review" if kind == "pptx" else "Region", "North", phrase]
    if kind == "docx" or kind == "pdf":
        marks[0] = "First paragraph"
    positions = [flat.find(mark) for mark in marks]
    order = all(p >= 0 for p in positions) and positions == sorted(positions)
    row = any(re.search(r"North\W+Alice Moreau\W+1200", line) for line in joined.splitlines())
    return phrase in flat, order, row


def bench_compare(folder: Path) -> None:
    print("\n| format | library | phrase | reading order | table row on one line | large file | MB/s "
          "| pages, paragraphs, slides or rows /s | installed MB | licence |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, candidates in CANDIDATES.items():
        phrase = f"zebra {kind} marmalade"
        small = s.write(folder, f"small.{kind}", getattr(s, f"{kind}_document")(phrase))
        data, units = large_file(kind, phrase)
        big = s.write(folder, f"large.{kind}", data)
        for name, distribution, function in candidates:
            try:
                found, order, row = quality(kind, function(small), phrase)
                started = time.perf_counter()
                large_text = function(big)
                seconds = time.perf_counter() - started
            except ImportError:
                print(f"| {kind} | {name} | not installed here | | | | | | | |")
                continue
            found = found and phrase in re.sub(r"\s+", " ", "\n".join(large_text))
            size = f"{installed_mb(distribution):.1f}" if distribution else "0"
            per_unit = f"{units / seconds:.0f}" if units else "-"
            yes = {True: "yes", False: "**no**"}
            print(f"| {kind} | {name} | {yes[found]} | {yes[order]} | {yes[row]} | {len(data) / MB:.2f} MB in "
                  f"{seconds:.2f} s | {len(data) / MB / seconds:.2f} | {per_unit} | {size} | {licence(distribution)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--max-mb", type=float, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--compare-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ca-bench-extract-") as scratch:
        if not args.compare_only:
            bench_pool(args, Path(scratch))
        if not args.skip_compare:
            bench_compare(Path(scratch))


if __name__ == "__main__":
    main()
