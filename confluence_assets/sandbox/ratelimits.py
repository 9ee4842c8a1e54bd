"""Rate limits as Confluence sends them in 2026: a token bucket per server, its headers on every response,
and Atlassian's 429s (a burst limit, or an exhausted hourly quota).

Off unless a server is given a :class:`RateLimit` (request-count tests are unchanged). Cloud-style
(https://developer.atlassian.com/cloud/confluence/rate-limiting/): ``X-RateLimit-Limit`` (the bucket's
size), ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` (ISO 8601, when the bucket is full again, or the
next UTC hour for an exhausted quota), ``X-RateLimit-NearLimit: true`` when under 20 % is left, and on a
429 ``Retry-After`` (whole seconds) and ``RateLimit-Reason`` (``confluence-burst-based`` or
``confluence-quota-tenant-based``). Data Center-style (Confluence DC "Adjusting your code for rate
limiting", _RateLimiting_HTTPheaders): ``X-RateLimit-Limit``, ``X-RateLimit-Remaining``,
``X-RateLimit-Interval-Seconds``, ``X-RateLimit-FillRate`` and ``Retry-After`` (0 while tokens are left).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CLOUD = "cloud"
DATA_CENTER = "datacenter"
BURST_REASON = "confluence-burst-based"
QUOTA_REASON = "confluence-quota-tenant-based"
NEAR_LIMIT_FRACTION = 0.2  # Cloud: X-RateLimit-NearLimit when less than this share of the limit is left


@dataclass(frozen=True)
class RateLimit:
    """A bucket of ``capacity`` tokens refilled by ``fill_rate`` tokens every ``interval_seconds``; each
    request takes one. ``hourly_quota``: requests per UTC hour on top of it (Cloud's points quota, one
    point a request here); None: no quota."""

    capacity: int = 100
    fill_rate: int = 100
    interval_seconds: float = 1.0
    style: str = CLOUD
    hourly_quota: int | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.fill_rate < 1 or self.interval_seconds <= 0:
            raise ValueError("a rate limit needs capacity >= 1, fill_rate >= 1 and interval_seconds > 0")
        if self.style not in (CLOUD, DATA_CENTER):
            raise ValueError(f"rate limit style must be {CLOUD} or {DATA_CENTER}, got {self.style!r}")

    @property
    def per_second(self) -> float:
        return self.fill_rate / self.interval_seconds


def parse_rate_limit(spec: str, *, style: str = CLOUD) -> RateLimit | None:
    """``"capacity=20,fill_rate=10,interval_seconds=1,hourly_quota=5000"`` (SANDBOX_RATE_LIMIT); or a
    bare number: that many requests a second, bucket of the same size. Empty: no rate limit."""
    spec = spec.strip()
    if not spec:
        return None
    if spec.replace(".", "", 1).isdigit():
        rate = max(1, round(float(spec)))
        return RateLimit(capacity=rate, fill_rate=rate, style=style)
    options: dict = {"style": style}
    for item in spec.split(","):
        key, _, value = (part.strip() for part in item.partition("="))
        if key in ("capacity", "fill_rate", "hourly_quota"):
            options[key] = int(value)
        elif key == "interval_seconds":
            options[key] = float(value)
        elif key == "style":
            options[key] = value
        else:
            raise ValueError(f"unknown rate limit option {key!r} in {spec!r}")
    return RateLimit(**options)


@dataclass(frozen=True)
class Verdict:
    """One request's fate: allowed or not, and the headers it is answered with."""

    allowed: bool
    headers: dict[str, str]
    reason: str | None = None  # on a refusal: burst or quota


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds (Cloud documents minutes, ``yyyy-MM-ddTHH:mmZ``; finer is still
    ISO 8601 and lets a client pace a one-second burst window)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class TokenBucket:
    """Thread-safe; ``clock`` is monotonic seconds, ``wall`` the UTC time the headers name."""

    def __init__(
        self,
        limit: RateLimit,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._tokens = float(limit.capacity)
        self._at = clock()
        self._hour: datetime | None = None
        self._used_this_hour = 0
        self.refused = 0  # requests answered 429 by the bucket
        self.lowest_remaining = limit.capacity

    def _refill(self, now: float) -> None:
        self._tokens = min(self.limit.capacity, self._tokens + (now - self._at) * self.limit.per_second)
        self._at = now

    def take(self) -> Verdict:
        with self._lock:
            now, wall = self._clock(), self._wall()
            self._refill(now)
            hour = wall.replace(minute=0, second=0, microsecond=0)
            if hour != self._hour:
                self._hour, self._used_this_hour = hour, 0
            quota = self.limit.hourly_quota
            if quota is not None and self._used_this_hour >= quota:
                self.refused += 1
                return self._quota_refusal(wall, hour + timedelta(hours=1))
            if self._tokens < 1:
                self.refused += 1
                return self._burst_refusal(wall)
            self._tokens -= 1
            self._used_this_hour += 1
            remaining = math.floor(self._tokens)
            self.lowest_remaining = min(self.lowest_remaining, remaining)
            return Verdict(True, self._headers(wall, remaining))

    def _headers(self, wall: datetime, remaining: int) -> dict[str, str]:
        limit = self.limit
        headers = {"X-RateLimit-Limit": str(limit.capacity), "X-RateLimit-Remaining": str(remaining)}
        if limit.style == DATA_CENTER:
            wait = 0 if remaining >= 1 else math.ceil((1 - self._tokens) / limit.per_second)
            headers.update(
                {
                    "X-RateLimit-Interval-Seconds": f"{limit.interval_seconds:g}",
                    "X-RateLimit-FillRate": str(limit.fill_rate),
                    "Retry-After": str(wait),
                }
            )
            return headers
        to_full = (limit.capacity - self._tokens) / limit.per_second
        headers["X-RateLimit-Reset"] = iso_utc(wall + timedelta(seconds=to_full))
        if remaining < NEAR_LIMIT_FRACTION * limit.capacity:
            headers["X-RateLimit-NearLimit"] = "true"
        return headers

    def _burst_refusal(self, wall: datetime) -> Verdict:
        wait = (1 - self._tokens) / self.limit.per_second
        headers = self._headers(wall, 0)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))  # whole seconds, as Atlassian sends it
        if self.limit.style == CLOUD:
            headers["X-RateLimit-Reset"] = iso_utc(wall + timedelta(seconds=wait))
            headers["RateLimit-Reason"] = BURST_REASON
        self.lowest_remaining = 0
        return Verdict(False, headers, BURST_REASON)

    def _quota_refusal(self, wall: datetime, next_hour: datetime) -> Verdict:
        # An exhausted hourly quota blocks every request until the next UTC hour (rate-limiting page).
        headers = self._headers(wall, 0)
        headers["Retry-After"] = str(max(1, math.ceil((next_hour - wall).total_seconds())))
        headers["X-RateLimit-Reset"] = next_hour.strftime("%Y-%m-%dT%H:%MZ")
        headers["RateLimit-Reason"] = QUOTA_REASON
        self.lowest_remaining = 0
        return Verdict(False, headers, QUOTA_REASON)


# Atlassian's 429 body (the REST API's error envelope, as Confluence Cloud answers a throttled request).
def too_many_requests_body(reason: str) -> dict:
    what = "hourly quota exhausted" if reason == QUOTA_REASON else "burst limit reached"
    return {
        "statusCode": 429,
        "data": {"authorized": True, "valid": True, "allowedInReadOnlyMode": True, "errors": [], "successful": False},
        "message": f"Rate limit exceeded ({what}).",
        "reason": "Too Many Requests",
    }
