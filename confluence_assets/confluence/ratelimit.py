"""Confluence's rate limits as a budget the client keeps: the headers of every response read, requests
spaced out before the limit, 429s waited out as told (or failed at once when told to wait too long), and
what it cost per run (:class:`RequestStats`).

Headers (https://developer.atlassian.com/cloud/confluence/rate-limiting/; Data Center: "Adjusting your
code for rate limiting"): ``X-RateLimit-Limit``/``-Remaining`` on both; Cloud adds ``X-RateLimit-Reset``
(ISO 8601) and ``X-RateLimit-NearLimit`` (under 20 % left), and on a 429 ``Retry-After`` and
``RateLimit-Reason`` (``...-burst-based`` or ``...-quota-...``: an exhausted hourly quota blocks every
request until the next UTC hour); Data Center adds ``X-RateLimit-FillRate`` tokens per
``X-RateLimit-Interval-Seconds``. Deprecated endpoints answer with ``Deprecation``/``Sunset`` (logged once
per process and endpoint); a removed one answers 410 Gone (CHANGE-864), which no retry mends.

All of it sits where every request passes: the urllib3 ``Retry`` (429s, before each retry) and the
``HTTPAdapter`` (pacing before a request, headers after it), so atlassian-python-api's own calls are
covered as much as ours. Requests in flight to one site are bounded per process (``max_concurrent``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from confluence_assets import settings
from confluence_assets.confluence import errors

log = logging.getLogger(__name__)

NEAR_LIMIT_FRACTION = 0.2  # Cloud's X-RateLimit-NearLimit threshold; applied to Data Center's headers too
QUOTA_MARK = "quota"  # RateLimit-Reason names a quota (hourly, points-based) rather than a burst limit
# The v2 endpoint replacing each deprecated v1 one the sync calls (CHANGE-864), for the 410 message.
V2_EQUIVALENTS = {"rest/api/space": "api/v2/spaces", "rest/api/content/{id}": "api/v2/pages/{id}"}


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 6
    backoff_seconds: float = 0.5  # first backoff; doubles each retry
    backoff_max_seconds: float = 30.0
    jitter_seconds: float = 0.5
    retry_after_cap_seconds: float = 120.0  # the longest one wait lasts
    # A 429 asking for longer than this (an exhausted hourly quota) fails at once, naming the reset time.
    rate_limit_max_wait_seconds: float = 120.0


@dataclass
class RequestStats:
    """HTTP attempts made to Confluence (retries included), and what rate limiting cost."""

    responses: int = 0
    retries: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    restriction_requests: int = 0  # completions of truncated restriction lists (of the responses above)
    rate_limited: int = 0  # 429 answers, retried ones included
    seconds_waited: float = 0.0  # slept for the rate limit: 429 waits and pacing before the limit
    lowest_remaining: int | None = None  # the lowest X-RateLimit-Remaining seen (None: no such header)

    @property
    def attempts(self) -> int:
        return self.responses + self.retries

    def rate_limit_metadata(self) -> dict[str, float | int]:
        """Per-run numbers for the assets' metadata (-1: the site sent no X-RateLimit-Remaining)."""
        return {
            "confluence_requests": self.attempts,
            "confluence_429s": self.rate_limited,
            "rate_limit_seconds_waited": round(self.seconds_waited, 3),
            "rate_limit_lowest_remaining": -1 if self.lowest_remaining is None else self.lowest_remaining,
        }


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None and value.strip() else None
    except ValueError:
        return None


def parse_reset(value: str | None) -> datetime | None:
    """``X-RateLimit-Reset``: ISO 8601 (Cloud documents ``yyyy-MM-ddTHH:mmZ``; seconds and fractions too)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def asked_wait(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds a 429 asks to wait: ``Retry-After`` (seconds or an HTTP date), else until ``X-RateLimit-Reset``."""
    now = now or datetime.now(UTC)
    raw = headers.get("Retry-After")
    if raw is not None:
        seconds = _number(raw)
        if seconds is None:
            try:
                seconds = (parsedate_to_datetime(raw) - now).total_seconds()
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds)
    reset = parse_reset(headers.get("X-RateLimit-Reset"))
    return max(0.0, (reset - now).total_seconds()) if reset else None


class RateLimitBudget:
    """What the last response said about the budget, and the pause it asks for before the next request."""

    def __init__(self, stats: RequestStats, max_pause_seconds: float) -> None:
        self.stats = stats
        self.max_pause_seconds = max_pause_seconds
        self._lock = threading.Lock()
        self._next_at = 0.0  # monotonic time before which the next request should not start

    def observe(self, headers: Any, *, pace: bool = True) -> None:
        """Note what ``headers`` say; ``pace``: and space the next request by them (not after a 429, which
        the retry waits out itself: its pause would come on top)."""
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        if remaining is None:
            return
        remaining_int = max(0, int(remaining))
        limit = _number(headers.get("X-RateLimit-Limit"))
        near = str(headers.get("X-RateLimit-NearLimit", "")).lower() == "true"
        near = near or (limit is not None and remaining_int < NEAR_LIMIT_FRACTION * limit)
        pause = self._pause(headers, remaining_int) if near and pace else 0.0
        with self._lock:
            low = self.stats.lowest_remaining
            self.stats.lowest_remaining = remaining_int if low is None else min(low, remaining_int)
            if pace:
                self._next_at = time.monotonic() + min(pause, self.max_pause_seconds)

    @staticmethod
    def _pause(headers: Any, remaining: int) -> float:
        """Spread what is left until the window resets (Cloud), or go at the fill rate (Data Center)."""
        reset = parse_reset(headers.get("X-RateLimit-Reset"))
        if reset is not None:
            return max(0.0, (reset - datetime.now(UTC)).total_seconds()) / max(remaining, 1)
        fill = _number(headers.get("X-RateLimit-FillRate"))
        interval = _number(headers.get("X-RateLimit-Interval-Seconds"))
        if remaining == 0:
            told = _number(headers.get("Retry-After"))
            if told is not None:
                return told
        if fill and interval:
            return interval / fill
        return 0.0

    def wait(self) -> None:
        with self._lock:
            pause = self._next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
            with self._lock:
                self.stats.seconds_waited += pause


_deprecations_logged: set[str] = set()
_deprecations_lock = threading.Lock()
_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


def endpoint_of(method: str, url: str) -> str:
    """``GET /wiki/rest/api/content/{id}``: the path with numeric ids generalised (one log line per endpoint)."""
    return f"{method} {_ID_SEGMENT.sub('/{id}', urlsplit(url).path)}"


def note_deprecation(response: requests.Response) -> None:
    """Log a ``Deprecation``/``Sunset`` notice once per process and endpoint."""
    headers = response.headers
    if "Deprecation" not in headers and "Sunset" not in headers:
        return
    endpoint = endpoint_of(response.request.method or "GET", response.url)
    with _deprecations_lock:
        if endpoint in _deprecations_logged:
            return
        _deprecations_logged.add(endpoint)
    link = headers.get("Link", "")
    log.warning(
        "Confluence marks %s as deprecated (Deprecation: %s%s)%s: it may answer 410 Gone once removed",
        endpoint,
        headers.get("Deprecation", "-"),
        f", Sunset: {headers['Sunset']}" if "Sunset" in headers else "",
        f"; see {link}" if link else "",
    )


_site_slots: dict[str, threading.BoundedSemaphore] = {}
_site_slots_lock = threading.Lock()


def site_slots(url: str, max_concurrent: int) -> threading.BoundedSemaphore:
    """The process's semaphore for ``url``'s host: every client of a site shares it (the first size wins)."""
    key = urlsplit(url).netloc
    with _site_slots_lock:
        if key not in _site_slots:
            _site_slots[key] = threading.BoundedSemaphore(max(1, max_concurrent))
        return _site_slots[key]


class BudgetedAdapter(HTTPAdapter):
    """Pauses before a request when the budget asks, bounds requests in flight to the site, reads the
    rate-limit and deprecation headers of every response."""

    def __init__(
        self,
        budget: RateLimitBudget,
        slots: threading.BoundedSemaphore | None,
        gate: Callable[[], float] | None = None,
        **kwargs: Any,
    ) -> None:
        self.budget = budget
        self.slots = slots
        self.gate = gate  # the site's shared requests-per-second ceiling (db.request_budget); sleeps, says how long
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.budget.wait()
        if self.gate is not None:
            self.budget.stats.seconds_waited += self.gate()
        if self.slots is None:
            response = super().send(request, *args, **kwargs)
        else:
            with self.slots:
                response = super().send(request, *args, **kwargs)
        self.budget.observe(response.headers, pace=response.status_code != 429)
        note_deprecation(response)
        return response


def make_retry(policy: RetryPolicy, stats: RequestStats, budget: RateLimitBudget) -> Retry:
    """urllib3 retries of connection errors, read timeouts and 429/5xx with capped exponential backoff plus
    jitter; a 429 waits what it asks for (Retry-After, else until X-RateLimit-Reset), up to
    ``retry_after_cap_seconds``, unless it asks for more than ``rate_limit_max_wait_seconds``: then it is
    handed back at once (the caller fails with the reset time instead of burning its retries)."""

    class BudgetedRetry(Retry):
        def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> Retry:
            response = kwargs.get("response")
            if response is not None and response.status == 429:
                stats.rate_limited += 1
                budget.observe(response.headers, pace=False)
                asked = asked_wait(response.headers)
                if asked is not None and asked > policy.rate_limit_max_wait_seconds:
                    reason = ResponseError(f"rate limited for {asked:.0f} s")
                    raise MaxRetryError(kwargs.get("_pool"), url or "", reason)
            stats.retries += 1
            return super().increment(method, url, *args, **kwargs)

        def parse_retry_after(self, retry_after: str) -> float:
            return min(super().parse_retry_after(retry_after), policy.retry_after_cap_seconds)

        def get_retry_after(self, response: Any) -> float | None:
            if response.status != 429:
                return super().get_retry_after(response)
            asked = asked_wait(response.headers)
            return None if asked is None else min(asked, policy.retry_after_cap_seconds)

        def sleep(self, response: Any = None) -> None:
            began = time.monotonic()
            super().sleep(response)
            if response is not None and response.status == 429:
                stats.seconds_waited += time.monotonic() - began

    return BudgetedRetry(
        total=policy.max_retries,
        connect=policy.max_retries,
        read=policy.max_retries,
        status=policy.max_retries,
        other=0,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=frozenset({429, 500, 502, 503, 504}),
        backoff_factor=policy.backoff_seconds,
        backoff_max=policy.backoff_max_seconds,
        backoff_jitter=policy.jitter_seconds,
        respect_retry_after_header=True,
        raise_on_status=False,  # hand the last response back so the error names its status
        raise_on_redirect=False,
    )


def trace_suffix(response: requests.Response | None) -> str:
    """`` (atl-traceid 3f2a...)``: what Atlassian support asks for about a failed request."""
    trace = response.headers.get("atl-traceid") if response is not None else None
    return f" (atl-traceid {trace})" if trace else ""


def rate_limit_error(response: requests.Response, shown: str, policy: RetryPolicy) -> errors.ConfluenceRateLimitError:
    """The one-line error of a 429 that was not (or no longer) worth waiting for."""
    headers = response.headers
    reason = headers.get("RateLimit-Reason") or headers.get("X-Beta-RateLimit-Reason") or ""
    kind = f"the hourly quota is exhausted ({reason})" if QUOTA_MARK in reason else "burst rate limit"
    if reason and QUOTA_MARK not in reason:
        kind += f" ({reason})"
    asked = asked_wait(headers)
    reset = headers.get("X-RateLimit-Reset")
    if not reset and asked is not None:
        reset = datetime.fromtimestamp(time.time() + asked, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    until = f" until {reset}" if reset else ""
    if asked is not None and asked > policy.rate_limit_max_wait_seconds:
        why = (
            f"it asks to wait {asked:.0f} s, more than {settings.CONFLUENCE_RATE_LIMIT_MAX_WAIT_SECONDS}="
            f"{policy.rate_limit_max_wait_seconds:g}: not retried"
        )
    else:
        why = "still limited after every retry"
    return errors.ConfluenceRateLimitError(
        f"{shown}: Confluence rate-limited the request (HTTP 429, {kind}){until}; {why}{trace_suffix(response)}"
    )


def gone_error(response: requests.Response) -> errors.ConfluenceGoneError:
    """410 Gone: the endpoint was removed (CHANGE-864); name it and its v2 replacement."""
    endpoint = endpoint_of(response.request.method or "GET", response.url)
    path = _ID_SEGMENT.sub("/{id}", urlsplit(response.url).path)
    replacement = next((v2 for v1, v2 in V2_EQUIVALENTS.items() if path.endswith("/" + v1)), None)
    instead = f" (its v2 equivalent: {replacement})" if replacement else ""
    return errors.ConfluenceGoneError(
        f"{endpoint}: Confluence removed this deprecated v1 endpoint (HTTP 410 Gone, CHANGE-864): upgrade "
        f"confluence-assets to a release that calls the v2 API{instead}{trace_suffix(response)}"
    )
