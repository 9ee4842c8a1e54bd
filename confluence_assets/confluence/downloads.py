"""Attachment bytes, streamed to a file with a size and a time limit.

Cloud serves them at ``/rest/api/content/{pageId}/child/attachment/{attachmentId}/download`` (v1, no v2
equivalent), which answers 302 to the media store; the ``/download/attachments/...`` servlet path that
``_links.download`` names no longer accepts API-token auth (CHANGE-2735). atlassian-python-api's
``get`` reads whole bodies into memory, so this goes through the client's ``requests`` session itself
(same credentials, the same retries of connection errors, 429 and 5xx, every attempt counted in
``ConfluenceAPI.stats``) with ``stream=True``: a 2 GB upload is refused by its ``Content-Length`` or cut
at the limit, never held. The redirect is followed by requests; it drops the Authorization header when
the media host differs, which is what Cloud expects (the media URL carries its own token).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import requests

from confluence_assets.confluence.client import ConfluenceAPI
from confluence_assets.confluence.responses import join_url

CHUNK_BYTES = 1024 * 1024


class DownloadError(Exception):
    """An attachment that could not be downloaded, with a one-line reason (no URL tokens, no secrets)."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient  # worth trying again at the page's next sync (network, 429, 5xx)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    seconds: float


def listed_version(attachment: dict) -> int | None:
    """The version of an attachment as a listing shows it: ``version.number`` when expanded, else the
    ``version`` query parameter of its ``_links.download`` (Cloud's ``...?version=2&modificationDate=...``)."""
    number = (attachment.get("version") or {}).get("number") if isinstance(attachment.get("version"), dict) else None
    if isinstance(number, int):
        return number
    link = ((attachment.get("_links") or {}).get("download")) or ""
    values = parse_qs(urlsplit(link).query).get("version") or []
    return int(values[0]) if values and values[0].isdigit() else None


def download_path(page_id: str, attachment_id: str) -> str:
    return f"rest/api/content/{quote(page_id, safe='')}/child/attachment/{quote(attachment_id, safe='')}/download"


def download_attachment(
    api: ConfluenceAPI,
    page_id: str,
    attachment_id: str,
    dest: Path,
    *,
    version: int | None,
    max_bytes: int,
    timeout_seconds: float,
) -> Downloaded:
    """Stream one attachment (``version``, when known) into ``dest``; DownloadError when it fails, is
    larger than ``max_bytes`` or takes longer than ``timeout_seconds`` in all."""
    url = join_url(api.url, download_path(page_id, attachment_id))
    params = {"version": str(version)} if version else None
    session: requests.Session = api._client.session  # the client's own: credentials, retries, counting
    started = time.monotonic()
    try:
        response = session.get(url, params=params, stream=True, timeout=timeout_seconds, allow_redirects=True)
    except requests.exceptions.RetryError as exc:
        raise DownloadError(f"gave up after retries ({type(exc).__name__})", transient=True) from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise DownloadError(f"download failed: {type(exc).__name__}", transient=True) from None
    with response:
        if response.status_code != 200:
            transient = response.status_code == 429 or response.status_code >= 500
            raise DownloadError(f"download answered HTTP {response.status_code}", transient=transient)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise DownloadError(f"too large to download: {_mb(int(declared))} (limit {_mb(max_bytes)})")
        size = 0
        try:
            with dest.open("wb") as out:
                for block in response.iter_content(CHUNK_BYTES):
                    size += len(block)
                    if size > max_bytes:
                        raise DownloadError(f"too large to download: over {_mb(max_bytes)} (limit {_mb(max_bytes)})")
                    if time.monotonic() - started > timeout_seconds:
                        raise DownloadError(f"download took over {timeout_seconds:g} s", transient=True)
                    out.write(block)
        except requests.RequestException as exc:
            raise DownloadError(f"download interrupted: {type(exc).__name__}", transient=True) from None
    return Downloaded(dest, size, time.monotonic() - started)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MB"
