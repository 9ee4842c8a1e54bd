"""A file's type from its bytes (magic numbers; Office zips by their main part), never from its name or
declared media type alone, and whether the declared type agrees.

The declared type of a Confluence attachment is whatever the uploading browser or client sent (often
``application/octet-stream``, sometimes wrong), so it only names the parser when the bytes cannot tell
(CSV, Markdown and plain text are all just text). A file whose bytes contradict its declared type is
extracted by what the bytes are when that is a supported type (the mismatch is noted), and failed with
"declared X, detected Y" when it is not: no parser ever runs on a format it was not made for.
"""

from __future__ import annotations

import mimetypes
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

HEAD_BYTES = 8192
OOXML = "application/vnd.openxmlformats-officedocument"
DOCX_TYPE = f"{OOXML}.wordprocessingml.document"
PPTX_TYPE = f"{OOXML}.presentationml.presentation"
XLSX_TYPE = f"{OOXML}.spreadsheetml.sheet"
PDF = "application/pdf"
CSV, MARKDOWN, HTML, PLAIN = "text/csv", "text/markdown", "text/html", "text/plain"
EXTRACTED_KINDS = {PDF: "pdf", DOCX_TYPE: "docx", PPTX_TYPE: "pptx", XLSX_TYPE: "xlsx"}
LABELS = {PDF: "PDF", DOCX_TYPE: "DOCX", PPTX_TYPE: "PPTX", XLSX_TYPE: "XLSX", CSV: "CSV", HTML: "HTML"}
ENCRYPTED_OFFICE = "application/x-ooxml-encrypted"

# Magic numbers: (offset, bytes, media type), first match wins.
MAGIC: list[tuple[int, bytes, str]] = [
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
    (0, b"BM", "image/bmp"),
    (0, b"\x00\x00\x01\x00", "image/vnd.microsoft.icon"),
    (0, b"8BPS", "image/vnd.adobe.photoshop"),
    (0, b"\x1f\x8b", "application/gzip"),
    (0, b"BZh", "application/x-bzip2"),
    (0, b"\xfd7zXZ\x00", "application/x-xz"),
    (0, b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (0, b"Rar!\x1a\x07", "application/vnd.rar"),
    (0, b"\x28\xb5\x2f\xfd", "application/zstd"),
    (257, b"ustar", "application/x-tar"),
    (0, b"\x7fELF", "application/x-executable"),
    (0, b"MZ", "application/vnd.microsoft.portable-executable"),
    (0, b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (0, b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (0, b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1aE\xdf\xa3", "video/webm"),
    (0, b"{\\rtf", "application/rtf"),
    (0, b"%!PS", "application/postscript"),
    (0, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"PK\x05\x06", "application/zip"),
]
RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
FTYP = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
    b"qt  ": "video/quicktime",
}
OLE_STREAMS = [
    ("EncryptedPackage", ENCRYPTED_OFFICE),
    ("WordDocument", "application/msword"),
    ("Workbook", "application/vnd.ms-excel"),
    ("PowerPoint Document", "application/vnd.ms-powerpoint"),
]
# An OOXML package's main part content type -> the document type (macro-enabled and template forms too).
OOXML_MAIN = [
    (re.compile(r"wordprocessingml\.(document|template)\.main\+xml|ms-word\.\w+\.macroEnabled"), DOCX_TYPE),
    (re.compile(r"presentationml\.(presentation|slideshow|template)\.main\+xml"
                r"|ms-powerpoint\.\w+\.macroEnabled"), PPTX_TYPE),
    (re.compile(r"spreadsheetml\.(sheet|template)\.main\+xml|ms-excel\.\w+\.macroEnabled"), XLSX_TYPE),
]
OOXML_PARTS = [("word/document.xml", DOCX_TYPE), ("ppt/presentation.xml", PPTX_TYPE), ("xl/workbook.xml", XLSX_TYPE)]
TEXT_APPLICATION_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/javascript")
GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/x-unknown", "application/unknown",
           "application/force-download", "application/download", "application/x-download"}
# Declared types that honestly describe what the bytes turned out to be (Windows sends CSV as ms-excel).
COMPATIBLE = {
    "application/zip": {DOCX_TYPE, PPTX_TYPE, XLSX_TYPE, "application/zip"},
    "application/x-zip-compressed": {DOCX_TYPE, PPTX_TYPE, XLSX_TYPE, "application/zip"},
    "application/msword": {DOCX_TYPE, ENCRYPTED_OFFICE},
    "application/vnd.ms-excel": {XLSX_TYPE, CSV, ENCRYPTED_OFFICE},
    "application/vnd.ms-powerpoint": {PPTX_TYPE, ENCRYPTED_OFFICE},
    DOCX_TYPE: {ENCRYPTED_OFFICE}, PPTX_TYPE: {ENCRYPTED_OFFICE}, XLSX_TYPE: {ENCRYPTED_OFFICE},
}
TEXT_BY_EXTENSION = {".csv": CSV, ".tsv": CSV, ".md": MARKDOWN, ".markdown": MARKDOWN, ".htm": HTML, ".html": HTML}
TEXT_BY_DECLARED = {"text/csv": CSV, "text/tab-separated-values": CSV, "text/markdown": MARKDOWN,
                    "text/x-markdown": MARKDOWN, "text/html": HTML, "application/xhtml+xml": HTML}


@dataclass(frozen=True)
class Detected:
    media_type: str
    mismatch: str = ""  # "declared X, detected Y" when the declared type contradicts the bytes

    @property
    def kind(self) -> str:
        """The extractor's name ("pdf", "docx", ..., "text"), or "" when the type is not extracted."""
        if self.media_type in EXTRACTED_KINDS:
            return EXTRACTED_KINDS[self.media_type]
        return "text" if self.media_type.startswith("text/") else ""


def normalise(media_type: str | None) -> str:
    return (media_type or "").split(";")[0].strip().lower()


def detect(path: Path, filename: str = "", declared: str | None = None) -> Detected:
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
    media_type = _from_bytes(path, head)
    if media_type == "text":
        media_type = _text_subtype(head, filename, normalise(declared))
    return Detected(media_type, _mismatch(normalise(declared), media_type, filename))


def _from_bytes(path: Path, head: bytes) -> str:
    if not head:
        return "application/x-empty"
    if b"%PDF-" in head[:1024]:
        return PDF
    if head[:4] == b"RIFF" and head[8:12] in RIFF:
        return RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return FTYP.get(head[8:12], "video/mp4")
    for offset, magic, media_type in MAGIC:
        if head[offset : offset + len(magic)] == magic:
            if media_type == "application/zip":
                return _zip_type(path)
            if media_type == "application/x-ole-storage":
                return _ole_type(path)
            return media_type
    if _looks_like_text(head):
        return "text"
    return "application/octet-stream"


def _zip_type(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names and not {"[Content_Types].xml"} & names:
                declared = _read_small(archive, "mimetype").decode("ascii", "replace").strip()
                return declared if "/" in declared else "application/zip"
            if "[Content_Types].xml" in names:
                content_types = _read_small(archive, "[Content_Types].xml").decode("utf-8", "replace")
                for pattern, media_type in OOXML_MAIN:
                    if pattern.search(content_types):
                        return media_type
            for part, media_type in OOXML_PARTS:
                if part in names:
                    return media_type
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
        return "application/zip"
    return "application/zip"


def _read_small(archive: zipfile.ZipFile, name: str, limit: int = 1 << 20) -> bytes:
    """At most ``limit`` inflated bytes of a member: detection never inflates a bomb."""
    with archive.open(name) as member:
        return member.read(limit)


def _ole_type(path: Path) -> str:
    # The directory's entry names are UTF-16LE; the directory sits anywhere, so its sectors are scanned.
    with open(path, "rb") as handle:
        data = handle.read(4 << 20)
    for stream, media_type in OLE_STREAMS:
        if stream.encode("utf-16-le") in data:
            return media_type
    return "application/x-ole-storage"


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 12, 13, 27))
    return controls <= len(head) // 100


def _text_subtype(head: bytes, filename: str, declared: str) -> str:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")) or (start.startswith(b"<") and b"<body" in start):
        return HTML
    if start.startswith((b"<svg", b"<?xml")) and b"<svg" in start[:1024]:
        return "image/svg+xml"
    if declared in TEXT_BY_DECLARED:
        return TEXT_BY_DECLARED[declared]
    if declared == "application/vnd.ms-excel" and Path(filename).suffix.lower() in (".csv", ".tsv"):
        return CSV
    return TEXT_BY_EXTENSION.get(Path(filename).suffix.lower(), PLAIN)


def _mismatch(declared: str, detected: str, filename: str) -> str:
    claimed = declared if declared not in GENERIC else normalise(mimetypes.guess_type(filename or "x")[0])
    if claimed in GENERIC or claimed == detected or detected in COMPATIBLE.get(claimed, ()):
        return ""
    if _is_text_type(claimed) and detected.startswith("text/"):
        return ""
    source = "" if declared not in GENERIC else " (by its name)"
    return f"declared {claimed}{source}, detected {detected}"


def _is_text_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in TEXT_APPLICATION_TYPES


def label(media_type: str) -> str:
    return LABELS.get(media_type, "text" if media_type.startswith("text/") else media_type)
