"""Pagination the way Confluence does it.

v1 lists page by ``start`` offset and say ``next`` while more items exist. Search and v2 page by an opaque
cursor that carries the sort key of the last item of the page (keyset pagination, so edits during a
walk behave as on Cloud) and say ``next`` whenever the page was *full*, so a walk can end on an empty
page. Permissions are applied after the window is cut, so a page may hold fewer than ``limit`` results
(even none) long before the end: clients must follow ``next``, never infer the end from ``size``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlencode

T = TypeVar("T")


class BadParameter(ValueError):
    """A query parameter Confluence would refuse with 400."""


def int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"Failed to convert '{raw}' for parameter '{name}' to int") from None
    if value < 0:
        raise BadParameter(f"{name} cannot be less than zero")
    return value


def encode_cursor(key: Sequence) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=True).encode()
    return "_sa_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple:
    try:
        raw = cursor.removeprefix("_sa_")
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        raise BadParameter("Invalid cursor") from None
    if not isinstance(key, list):
        raise BadParameter("Invalid cursor")
    return tuple(key)


def offset_window(items: Sequence[T], start: int, limit: int) -> tuple[Sequence[T], int | None]:
    """The items of one v1 page and the ``start`` of the next page (None at the end)."""
    window = items[start : start + limit]
    return window, (start + limit if start + limit < len(items) else None)


def keyset_window(
    items: Sequence[T], keys: Sequence[tuple], cursor: str | None, limit: int, start: int = 0
) -> tuple[Sequence[T], str | None]:
    """The items after ``cursor`` (else from ``start``) and the next cursor, given whenever the page is
    full. ``keys`` are the items' sort keys, ascending."""
    if cursor:
        after = decode_cursor(cursor)
        try:
            begin = bisect.bisect_right(keys, after)
        except TypeError:
            raise BadParameter("Invalid cursor") from None
    else:
        begin = start
    window = items[begin : begin + limit]
    return window, (encode_cursor(keys[begin + len(window) - 1]) if limit and len(window) == limit else None)


def link(path: str, params: dict[str, list[str]], changes: dict[str, str | int | None]) -> str:
    """``path?query`` with the request's parameters, some replaced (None removes one)."""
    merged = {k: list(v) for k, v in params.items()}
    for name, value in changes.items():
        merged.pop(name, None)
        if value is not None:
            merged[name] = [str(value)]
    query = urlencode([(k, v) for k, values in merged.items() for v in values], safe=",")
    return f"{path}?{query}" if query else path
