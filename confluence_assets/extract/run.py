"""One file, in the current process: size check, type detection, zip guard, the extractor, the outcome.
The worker processes call this; nothing else should (it has no memory or time bound of its own)."""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import resource
import time
from collections.abc import Callable
from pathlib import Path

from confluence_assets.extract import detect as media
from confluence_assets.extract import documents, text_formats
from confluence_assets.extract.output import TextBuilder
from confluence_assets.extract.types import (
    EXTRACTED,
    FAILED,
    MB,
    SKIPPED,
    Extraction,
    ExtractionFailed,
    Limits,
    TextFull,
)
from confluence_assets.extract.zipguard import check_zip

Extract = Callable[[Path, TextBuilder, Limits], None]
# kind -> (function, the module it needs, its distribution (for the version), needs the extra)
EXTRACTORS: dict[str, tuple[Extract, str, str, bool]] = {
    "pdf": (documents.extract_pdf, "pypdfium2", "pypdfium2", True),
    "docx": (documents.extract_docx, "docx", "python-docx", True),
    "pptx": (documents.extract_pptx, "pptx", "python-pptx", True),
    "xlsx": (documents.extract_xlsx, "python_calamine", "python-calamine", True),
    "csv": (text_formats.extract_csv, "csv", "", False),
    "html": (text_formats.extract_html, "bs4", "beautifulsoup4", False),
    "text": (text_formats.extract_plain, "codecs", "", False),
}
ZIPPED = {"docx", "pptx", "xlsx"}
TEXT_KINDS = {media.CSV: "csv", media.HTML: "html"}


def size_text(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / MB:.1f} MB"


def oversize_reason(size: int, limits: Limits) -> str:
    return f"larger than the {size_text(limits.max_file_bytes)} limit ({size_text(size)})"


@functools.cache
def available(kind: str) -> bool:
    """Whether the kind's library imports (a missing extra, or an install broken enough not to import)."""
    try:
        importlib.import_module(EXTRACTORS[kind][1])
    except ImportError:
        return False
    return True


def library(kind: str) -> str:
    distribution = EXTRACTORS[kind][2]
    if not distribution:
        return "python"
    try:
        return f"{distribution} {importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return distribution


def peak_rss_bytes() -> int:
    """This process's peak resident set since it started its program. Not ru_maxrss: Linux carries the
    forking parent's peak across exec into it, so a worker started by a 400 MB test process would report
    400 MB before reading a byte."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports kilobytes


def _at_memory_limit(limits: Limits) -> bool:
    """Whether this process's address space came within 5 % of the memory limit (its RLIMIT_AS)."""
    try:
        with open("/proc/self/status") as status:
            peak = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmPeak:")), 0)
    except OSError:
        return False
    return peak >= 0.95 * limits.memory_bytes


def extract_file(path: Path, filename: str, declared: str | None, limits: Limits) -> Extraction:
    started = time.monotonic()
    result = Extraction(status=FAILED, filename=filename, declared_media_type=declared or "")
    try:
        _extract_into(result, Path(path), limits)
    except ExtractionFailed as failure:
        result.status, result.reason, result.text = failure.status, failure.reason, ""
    except Exception as error:  # MemoryError, or a library's own failure on a file it was made for
        result.status, result.text = FAILED, ""
        if isinstance(error, MemoryError) or _at_memory_limit(limits):
            # Native code out of memory says so in its own words (libxml2: "unknown error"), so a failure
            # with the address space at its ceiling is the memory limit; the worker is replaced after it.
            result.reason = f"memory limit: needed more than {size_text(limits.memory_bytes)}"
            result.details["restart"] = True
        else:
            message = " ".join(str(error).split())[:160] or type(error).__name__
            result.reason = f"{media.label(result.detected_media_type)} could not be read: {message}"
    # Library messages may name the worker's path of the file ("Package not found at '/tmp/...'").
    result.reason = result.reason.replace(str(path), filename or "the file")
    result.chars = len(result.text)
    result.seconds = round(time.monotonic() - started, 4)
    result.worker_peak_rss_bytes = peak_rss_bytes()
    return result


def _extract_into(result: Extraction, path: Path, limits: Limits) -> None:
    try:
        size = path.stat().st_size
    except OSError:
        raise ExtractionFailed("file not found") from None
    if size > limits.max_file_bytes:
        raise ExtractionFailed(oversize_reason(size, limits))
    if size == 0:
        raise ExtractionFailed("empty file", SKIPPED)
    detected = media.detect(path, result.filename, result.declared_media_type)
    result.detected_media_type = detected.media_type
    kind = TEXT_KINDS.get(detected.media_type, detected.kind)
    if not kind:
        if detected.media_type == media.ENCRYPTED_OFFICE:
            raise ExtractionFailed("encrypted Office document (needs a password)")
        if detected.mismatch:
            raise ExtractionFailed(f"{detected.mismatch}: not extractable")
        raise ExtractionFailed(f"{detected.media_type} is not extracted", SKIPPED)
    if not available(kind):
        raise ExtractionFailed(f"install confluence-assets[attachments] to extract {media.label(detected.media_type)}",
                               SKIPPED)
    if kind in ZIPPED:
        check_zip(path, limits)
    function = EXTRACTORS[kind][0]
    out = TextBuilder(limits.max_text_chars)
    result.extractor = library(kind)
    try:
        function(path, out, limits)
    except TextFull:
        pass
    result.text = out.text()
    result.truncated = out.truncated
    result.unit = out.info.pop("unit", "")
    result.units = out.info.pop("units", 0)
    result.details.update(out.info)
    notes = [detected.mismatch] if detected.mismatch else []
    if out.truncated:
        notes.append(f"text cut at {limits.max_text_chars:,} characters (limit)")
    if not result.text.strip():
        result.text = ""
        scan = " (scanned or images only; no OCR)" if kind == "pdf" else ""
        raise ExtractionFailed(f"no text in this {media.label(detected.media_type)}{scan}", SKIPPED)
    result.status = EXTRACTED
    result.reason = "; ".join(notes)
