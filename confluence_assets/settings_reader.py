"""How settings.py reads one environment variable: parsed, validated, and refused with one line naming the
variable and what it accepts (collected, so ``doctor`` can report every bad value). No variable names here:
they are spelled in settings.py only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_CRON_FIELD = re.compile(r"[0-9*,/\-A-Za-z?LW#]+")
_PER_SPACE_ENTRY = re.compile(r"(?:([A-Za-z0-9_~-]+|\*)\s*=\s*)?([A-Za-z]+)")


class Reader:
    """Reads variables from one environment, collecting a message per bad value."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: dict[str, str] = {}  # variable name -> the one message about its value

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def text(self, name: str) -> str | None:
        value = self.environ.get(name)
        return value if value and value.strip() else None  # unset or blank: None, as settings.env

    def number(
        self, name: str, default: float | None, *, kind: type = int, minimum: float = 0, maximum: float | None = None
    ) -> float | None:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw.strip())
        except ValueError:
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            what = "a whole number" if kind is int else "a number"
            bound = f">= {minimum:g}" if maximum is None else f"from {minimum:g} to {maximum:g}"
            self.fail(name, f"{name} must be {what} {bound}, got {raw!r}")
            return default
        return value

    def share_or_count(self, name: str, what: str) -> tuple[float | None, int | None] | None:
        """``"20%"`` -> (20.0, None), ``"500"`` -> (None, 500); unset or bad: None (a bad value reported)."""
        raw = self.text(name)
        if raw is None:
            return None
        value = raw.strip()
        try:
            if value.endswith("%") and 0 <= float(value[:-1]) <= 100:
                return float(value[:-1]), None
            if not value.endswith("%") and int(value) >= 0:
                return None, int(value)
        except ValueError:
            pass
        self.fail(name, f"{name} must be a share of {what} from 0% to 100% or a whole number of them, got {raw!r}")
        return None

    def whole_one_of(self, name: str, default: int, allowed: tuple[int, ...], why: str) -> int:
        value = int(self.number(name, default, minimum=1))
        if value not in allowed:
            self.fail(name, f"{name} must be one of {', '.join(map(str, allowed))} ({why}), got {value}")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value not in allowed:
            self.fail(name, f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
            return default
        return value

    def items(self, name: str, default: tuple[str, ...], allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return default
        values = tuple(item.strip() for item in raw.split(",") if item.strip())
        if allowed is not None:
            unknown = sorted(set(values) - set(allowed))
            if unknown:
                self.fail(name, f"{name} names unknown values {unknown}: use {', '.join(allowed)}")
                return default
        return values

    def kinds(self, name: str, default: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[str, ...]:
        """A comma-separated subset of ``allowed`` (any case), or ``none`` for no value at all."""
        raw = self.text(name)
        if raw is None:
            return default
        values = tuple(dict.fromkeys(item.strip().lower() for item in raw.split(",") if item.strip()))
        if values == ("none",):
            return ()
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            self.fail(name, f"{name} names unknown values {unknown}: use {', '.join(allowed)} or none")
            return default
        return values

    def per_space(self, name: str, allowed: tuple[str, ...], example: str) -> tuple[tuple[str, str], ...]:
        """One of ``allowed`` for every space (``business``) or ``KEY=value`` pairs, ``*`` for the rest;
        ((KEY or "*", value), ...), in the order given."""
        raw = self.text(name)
        if raw is None:
            return ()
        pairs = []
        for item in (i.strip() for i in raw.split(",") if i.strip()):
            match = _PER_SPACE_ENTRY.fullmatch(item)
            if not match or match.group(2).lower() not in allowed:
                choices = " or ".join(allowed)
                self.fail(name, f"{name} must be {choices}, or KEY=value pairs (e.g. {example}), got {raw!r}")
                return ()
            pairs.append(((match.group(1) or "*").upper(), match.group(2).lower()))
        return tuple(pairs)

    def matching(self, name: str, pattern: str, example: str) -> str:
        """The value when it matches ``pattern`` in full ("" when unset or refused)."""
        raw = (self.text(name) or "").strip()
        if raw and not re.fullmatch(pattern, raw):
            self.fail(name, f"{name} must be {example}, got {raw!r}")
            return ""
        return raw

    def space_keys(self, name: str) -> tuple[str, ...]:
        from confluence_assets.confluence.keys import InvalidSpaceKeyError, validate_space_key

        keys = self.items(name, ())
        for key in keys:
            try:
                validate_space_key(key)
            except InvalidSpaceKeyError as exc:
                self.fail(name, f"{name}: {exc}")
                return ()
        return keys

    def zone(self, name: str, default: str | None) -> str | None:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            ZoneInfo(raw.strip())
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(name, f"{name}: unknown time zone {raw!r}: use an IANA name such as 'Asia/Seoul'")
            return default
        return raw.strip()

    def cron(self, name: str, default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        fields = raw.split()
        if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            self.fail(name, f"{name} must be a cron expression of five fields such as '0 3 * * 0', got {raw!r}")
            return default
        return " ".join(fields)

    def path(self, name: str) -> Path | None:
        raw = self.text(name)
        return Path(raw).expanduser() if raw else None
