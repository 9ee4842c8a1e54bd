"""Fault rules and request counters shared by both servers.

A rule matches an endpoint (``"GET /wiki/rest/api/content/search"``, the route template such as
``"GET /wiki/rest/api/content/{id}"``, a concrete path, or an ``fnmatch`` pattern like ``"*"``) and,
optionally, query parameters (patterns too). It lets the first ``skip`` matches pass, then applies to
``times`` matches (``None``: for ever), optionally only to ``every``-th one. What it does: wait ``delay``
seconds, answer ``status`` (with ``Retry-After`` when ``retry_after`` is given), reset the connection, or
serve an empty page that still carries a ``next`` link. Rules are checked in order; delays add up, the
first answering rule wins.

For the demo a rule can be written as text: ``"endpoint=GET /wiki/rest/api/search,status=429,every=5"``,
several separated by ``;`` (see :func:`parse_rules`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase


@dataclass
class Fault:
    endpoint: str = "*"
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    reset: bool = False
    empty_page: bool = False
    query: Mapping[str, str] | None = None
    skip: int = 0
    times: int | None = 1
    every: int = 1
    body: str | None = None  # replaces the server's error body for ``status``
    reason: str | None = None  # a 429's RateLimit-Reason (default: a burst limit)
    seen: int = field(default=0, init=False)  # matching requests so far
    applied: int = field(default=0, init=False)  # how often the rule acted

    @property
    def kind(self) -> str:
        if self.reset:
            return "reset"
        if self.status is not None:
            return f"status {self.status}"
        if self.empty_page:
            return "empty page"
        return "delay"

    def matches(self, endpoint: str, path: str, query: Mapping[str, list[str]]) -> bool:
        candidates = (endpoint, f"{endpoint.split(' ', 1)[0]} {path}")
        if not any(self.endpoint == c or fnmatchcase(c, self.endpoint) for c in candidates):
            return False
        for name, wanted in (self.query or {}).items():
            if not any(fnmatchcase(value, wanted) for value in query.get(name, [])):
                return False
        return True

    def consume(self) -> bool:
        """Count one matching request; True when the rule applies to it."""
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.applied >= self.times):
            return False
        if (self.seen - self.skip - 1) % max(1, self.every):
            return False
        self.applied += 1
        return True


@dataclass
class Decision:
    """What the matching rules ask of one request."""

    delay: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    reset: bool = False
    empty_page: bool = False
    body: str | None = None
    reason: str | None = None
    rules: list[Fault] = field(default_factory=list)


class FaultRules:
    """The fault rules of one server; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []

    def add(self, endpoint: str = "*", **options) -> Fault:
        """Add a rule (see :class:`Fault` for the options) and return it (its ``seen``/``applied`` count)."""
        rule = Fault(endpoint=endpoint, **options)
        if rule.status is None and not (rule.reset or rule.empty_page or rule.delay):
            raise ValueError("a fault needs one of status=, delay=, reset=True or empty_page=True")
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Fault) -> None:
        with self._lock:
            self._rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self):
        with self._lock:
            return iter(list(self._rules))

    def decide(self, endpoint: str, path: str, query: Mapping[str, list[str]]) -> Decision | None:
        with self._lock:
            decision: Decision | None = None
            for rule in self._rules:
                if not rule.matches(endpoint, path, query) or not rule.consume():
                    continue
                decision = decision or Decision()
                decision.rules.append(rule)
                decision.delay += rule.delay
                if decision.status is None and not decision.reset:
                    if rule.reset:
                        decision.reset = True
                    elif rule.status is not None:
                        decision.status, decision.retry_after, decision.body = rule.status, rule.retry_after, rule.body
                        decision.reason = rule.reason
                decision.empty_page = decision.empty_page or rule.empty_page
            return decision


class Stats:
    """Request counts per endpoint: ``stats["GET /wiki/rest/api/content/{id}"]``, patterns allowed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_endpoint: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.in_flight = 0  # requests being answered right now (faults' delays included)
        self.max_in_flight = 0  # the most ever answered at once (reset() clears it)
        self._answering: dict[int, str] = {}  # request number -> "METHOD path (client port)"
        self._numbered = 0
        self.peak_requests: list[str] = []  # what was being answered when max_in_flight was reached
        self.rate_limited = 0  # requests the token bucket refused (429), faults' 429s not included
        self.started: deque[float] = deque(maxlen=100_000)  # monotonic arrival of the latest requests

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def record(self, endpoint: str, path: str) -> None:
        with self._lock:
            self.started.append(time.monotonic())
            self.by_endpoint[endpoint] += 1
            self.by_path[endpoint.split(" ")[0] + " " + path] += 1

    def begin(self, what: str = "") -> int:
        """One more request being answered; its number, for :meth:`end`."""
        with self._lock:
            self._numbered += 1
            self._answering[self._numbered] = what
            self.in_flight += 1
            if self.in_flight > self.max_in_flight:
                self.max_in_flight = self.in_flight
                self.peak_requests = list(self._answering.values())
            return self._numbered

    def end(self, number: int | None = None) -> None:
        with self._lock:
            self._answering.pop(number, None)
            self.in_flight -= 1

    def __getitem__(self, pattern: str) -> int:
        return self.count(pattern)

    def count(self, pattern: str = "*") -> int:
        """Requests to endpoints (templates or concrete paths) matching ``pattern``."""
        with self._lock:
            if pattern in self.by_endpoint:
                return self.by_endpoint[pattern]
            if pattern in self.by_path:
                return self.by_path[pattern]
            return sum(n for e, n in self.by_endpoint.items() if fnmatchcase(e, pattern))

    def busiest_second(self) -> int:
        """The most requests that arrived within any one second (a sliding window over the latest 100,000)."""
        with self._lock:
            times = sorted(self.started)
        most, first = 0, 0
        for last, at in enumerate(times):
            while at - times[first] >= 1.0:
                first += 1
            most = max(most, last - first + 1)
        return most

    @property
    def total(self) -> int:
        return self.count("*")

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.by_endpoint)

    def reset(self) -> None:
        with self._lock:
            self.by_endpoint.clear()
            self.by_path.clear()
            self.max_in_flight = self.in_flight
            self.peak_requests = list(self._answering.values())
            self.rate_limited = 0
            self.started.clear()


_FLAG_KEYS = {"reset", "empty_page"}
_INT_KEYS = {"status", "skip", "times", "every"}
_FLOAT_KEYS = {"retry_after", "delay"}


def parse_rules(spec: str) -> list[dict]:
    """``"endpoint=GET /wiki/rest/api/search,status=429,retry_after=1,every=5;delay=0.05,times=0"``
    -> keyword dicts for :meth:`FaultRules.add`. ``times=0`` means for ever (``None``)."""
    rules: list[dict] = []
    for chunk in spec.split(";"):
        if not chunk.strip():
            continue
        options: dict = {}
        for item in chunk.split(","):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if key in _FLAG_KEYS:
                options[key] = not sep or value.lower() in ("1", "true", "yes")
            elif key in _INT_KEYS:
                options[key] = int(value)
            elif key in _FLOAT_KEYS:
                options[key] = float(value)
            elif key in ("endpoint", "reason"):
                options[key] = value
            else:
                raise ValueError(f"unknown fault option {key!r} in {chunk!r}")
        options.setdefault("times", 0)
        if options["times"] == 0:
            options["times"] = None
        rules.append(options)
    return rules
