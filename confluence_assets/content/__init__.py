"""Content processing: Confluence storage XHTML -> Markdown, page metadata and context-keeping chunks.

Plain Python, no Dagster: the asset graph calls ``convert_page`` then ``chunk_markdown``.
"""

from .chunking import chunk_markdown, own_text, reassemble
from .convert import convert_page
from .types import Chunk, ConversionError, ConvertedPage

__all__ = [
    "Chunk",
    "ConversionError",
    "ConvertedPage",
    "chunk_markdown",
    "convert_page",
    "own_text",
    "reassemble",
]
