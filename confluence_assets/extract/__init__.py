"""Text from attachments: PDF, DOCX, PPTX, XLSX, CSV, plain text, Markdown and HTML, in worker
subprocesses bounded in memory and time. Plain Python: no Dagster, no database.

    from confluence_assets.extract import Extractor, Limits

    with Extractor(Limits(max_file_bytes=50 * 1024**2, timeout_seconds=30)) as extractor:
        for result in extractor.extract_many([(path, "report.pdf", "application/pdf"), ...]):
            result.status, result.reason, result.text, result.units, result.detected_media_type

The binary formats need the ``attachments`` extra (``pip install 'confluence-assets[attachments]'``);
without it those files come back ``skipped`` with a one-line reason saying so.
"""

from confluence_assets.extract.detect import Detected
from confluence_assets.extract.detect import detect as detect_type
from confluence_assets.extract.pool import Extractor, PoolStats
from confluence_assets.extract.types import EXTRACTED, EXTRACTOR_VERSION, FAILED, SKIPPED, Extraction, Limits

__all__ = [
    "EXTRACTED",
    "EXTRACTOR_VERSION",
    "FAILED",
    "SKIPPED",
    "Detected",
    "Extraction",
    "Extractor",
    "Limits",
    "PoolStats",
    "detect_type",
]
