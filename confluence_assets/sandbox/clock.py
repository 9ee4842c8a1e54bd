"""The site's clock and Confluence's timestamp formats.

Tests need to place a mutation in a chosen minute (the incremental sync must not miss a page modified in
the minute its watermark straddles), so the clock can be frozen, set and advanced. Unfrozen, it follows
the wall clock. Confluence keeps millisecond precision, so does the clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


def utc_ms(when: datetime) -> datetime:
    """``when`` in UTC, truncated to milliseconds (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def parse_when(value: datetime | str) -> datetime:
    """A datetime, or an ISO 8601 string such as ``2026-03-01T09:30:00Z``."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return utc_ms(value)


def iso(when: datetime) -> str:
    """Confluence Cloud's timestamp format: ``2025-11-15T03:45:52.751Z``."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def friendly(when: datetime) -> str:
    """The ``friendlyWhen`` flavour of a timestamp (Confluence says e.g. ``Nov 15, 2025``)."""
    return f"{when.strftime('%b')} {when.day}, {when.year}"


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


class SiteClock:
    """Wall-clock time unless frozen; ``set``/``advance`` let tests choose the minute of an edit."""

    def __init__(self, frozen_at: datetime | str | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen: datetime | None = parse_when(frozen_at) if frozen_at is not None else None
        self._offset = timedelta(0)

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return utc_ms(datetime.now(UTC) + self._offset)

    def set(self, when: datetime | str) -> datetime:
        """Freeze the clock at ``when``."""
        with self._lock:
            self._frozen = parse_when(when)
            return self._frozen

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by ``timedelta(**delta)`` (frozen or not)."""
        step = timedelta(**delta)
        with self._lock:
            if self._frozen is not None:
                self._frozen = utc_ms(self._frozen + step)
            else:
                self._offset += step
        return self.now()

    def unfreeze(self) -> None:
        with self._lock:
            self._frozen = None
            self._offset = timedelta(0)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None
