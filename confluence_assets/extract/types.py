"""What an extraction is given (Limits) and what it returns (Extraction)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# Bump when any extractor's output changes, so that the pipeline extracts stored attachments again.
EXTRACTOR_VERSION = "extract-1"

EXTRACTED = "extracted"
FAILED = "failed"
SKIPPED = "skipped"

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds of one extraction. The worker process gets the memory limit as its address-space limit
    (RLIMIT_AS: RSS cannot be limited on Linux, and address space bounds it from above)."""

    max_file_bytes: int = 50 * MB  # larger files are not opened at all
    timeout_seconds: float = 30.0  # wall clock per file; the worker is killed and replaced past it
    memory_bytes: int = 512 * MB  # per worker process
    max_text_chars: int = 2_000_000  # the text is cut there (about 500 pages)
    max_inflated_bytes: int = 200 * MB  # all members of an Office (zip) file together, once inflated
    max_zip_members: int = 10_000
    workers: int = 2

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "memory_bytes", "max_text_chars", "max_inflated_bytes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"Limits.timeout_seconds must be positive, got {self.timeout_seconds}")


@dataclass
class Extraction:
    """One file's outcome. ``text`` is Markdown-ish: a ``## Page 3`` / ``## Slide 2: Title`` /
    ``## Sheet: Budgets`` heading per unit, tables as Markdown tables (documents, slides, HTML) or one
    ``column: value`` line per row (spreadsheets, CSV), so a chunk can name its page and keep its rows."""

    status: str  # EXTRACTED | FAILED | SKIPPED
    reason: str = ""  # one line, for failed and skipped (and a note on extracted: a type mismatch, a cut)
    filename: str = ""
    declared_media_type: str = ""
    detected_media_type: str = ""
    text: str = ""
    unit: str = ""  # "page" | "slide" | "sheet" | "" (text formats)
    units: int = 0
    chars: int = 0
    truncated: bool = False
    extractor: str = ""  # library and version, e.g. "pypdfium2 5.15.2"
    extractor_version: str = EXTRACTOR_VERSION
    seconds: float = 0.0
    worker_peak_rss_bytes: int = 0  # the worker's peak resident set after this file
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Extraction:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class ExtractionFailed(Exception):
    """A file that cannot be extracted, with the one-line reason (no paths, no secrets)."""

    def __init__(self, reason: str, status: str = FAILED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TextFull(Exception):
    """The text reached ``Limits.max_text_chars``: extraction stops and keeps what it has."""
