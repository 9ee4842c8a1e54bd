"""Zip bombs: an Office file's members are checked before any library opens it.

The directory's declared sizes are checked first (their total, the member count); then every member is
inflated once, in 1 MB pieces that are thrown away, counting the bytes it really yields, because a
directory can understate them and not every reader stops at the declared size (Python's zipfile does;
the Rust zip reader under python-calamine and libxml2's readers are not ours to audit). The memory limit
of the worker is the last line behind both.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

from confluence_assets.extract.types import MB, ExtractionFailed, Limits

PIECE = 1 << 20


def _size(n: int) -> str:
    if n >= 1024**3:
        return f"{n / 1024**3:.1f} GB"
    return f"{n / MB:.0f} MB" if n >= MB else f"{n:,} bytes"


def check_zip(path: Path, limits: Limits) -> None:
    """Raise ExtractionFailed naming the bomb, or return when every member inflates within the limits."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > limits.max_zip_members:
                raise ExtractionFailed(f"zip bomb: {len(members)} members (limit {limits.max_zip_members})")
            declared = sum(m.file_size for m in members)
            if declared > limits.max_inflated_bytes:
                raise ExtractionFailed(
                    f"zip bomb: members inflate to {_size(declared)} (limit {_size(limits.max_inflated_bytes)})"
                )
            # Each member may yield no more than its declared size, so the declared total bounds the real one.
            for member in members:
                _check_inflation(archive, member)
    except zipfile.BadZipFile as error:
        raise ExtractionFailed(f"corrupt zip container: {str(error)[:120]}") from None
    except (zlib.error, EOFError) as error:
        raise ExtractionFailed(f"corrupt zip member: {str(error)[:120]}") from None
    except NotImplementedError as error:
        raise ExtractionFailed(f"unsupported zip compression: {str(error)[:120]}") from None


def _check_inflation(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """Inflate a member's compressed stream ourselves (not through a reader that trusts the directory) and
    fail as soon as it yields more than the directory declares."""
    if member.compress_type == zipfile.ZIP_STORED:
        return
    if member.compress_type != zipfile.ZIP_DEFLATED:
        raise NotImplementedError(f"compression method {member.compress_type}")
    if member.flag_bits & 0x1:
        raise ExtractionFailed("encrypted zip member (password protected)")
    raw = archive.fp
    if raw is None:
        raise zipfile.BadZipFile("archive closed")
    raw.seek(member.header_offset)
    header = raw.read(30)
    if header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    raw.seek(member.header_offset + 30 + name_length + extra_length)
    inflater = zlib.decompressobj(-15)
    remaining = member.compress_size
    produced = 0
    while remaining > 0 and not inflater.eof:
        chunk = raw.read(min(PIECE, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        data = inflater.decompress(chunk, PIECE)
        while data:
            produced += len(data)
            if produced > member.file_size:
                raise ExtractionFailed(
                    f"zip bomb: a member inflates past the {_size(member.file_size)} its directory declares"
                )
            data = inflater.decompress(inflater.unconsumed_tail, PIECE) if inflater.unconsumed_tail else b""
