"""Packing a page's small sections together (chunking.py cuts; this decides which sections share a chunk).

A page of many short sections used to make one small chunk per section: five times LangChain's chunks for
the same text, each paying for its breadcrumb and a row in the HNSW index. Consecutive sections that each
fit one chunk are packed together up to the budget, their headings inline, under their common breadcrumb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..tokens import estimate_tokens

if TYPE_CHECKING:
    from .chunking import _Unit

_JOIN_TOKENS = 2  # the "\n\n" between a chunk's context line and its content (as chunking.py counts it)


@dataclass(slots=True)
class Plan:
    """A section ready to cut: its breadcrumb, context line, budget and units."""

    breadcrumb: list[str]
    context: str
    budget: int
    units: list[_Unit]

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.units)

    @property
    def fits(self) -> bool:  # one chunk holds the whole section
        return self.tokens <= self.budget and not any(u.must_cut_after for u in self.units[:-1])


def context_line(breadcrumb: list[str], limit: int) -> str:
    context = " > ".join(" ".join(part.split()) for part in breadcrumb)
    cap = max(8, limit // 4)  # a pathological heading must not eat the chunk
    while estimate_tokens(context) > cap and len(context) > 1:
        context = context[: len(context) // 2]
    return context


def common_breadcrumb(breadcrumbs: list[list[str]]) -> list[str]:
    """The longest breadcrumb every one of them starts with (at least the page title)."""
    common = breadcrumbs[0]
    for other in breadcrumbs[1:]:
        n = 0
        while n < min(len(common), len(other)) and common[n] == other[n]:
            n += 1
        common = common[:n]
    return common or breadcrumbs[0][:1]


def _pack_fits(pack: list[Plan], limit: int) -> bool:
    if len(pack) == 1:
        return True
    context = context_line(common_breadcrumb([p.breadcrumb for p in pack]), limit)
    return sum(p.tokens for p in pack) <= limit - estimate_tokens(context) - _JOIN_TOKENS


def packs(plans: list[Plan], limit: int) -> list[list[Plan]]:
    """Consecutive sections that each fit one chunk are packed together up to the budget (a page of many
    short sections made one small chunk per section: five times LangChain's chunks for the same text).
    Like the cuts inside a section, the packing is content-defined: a run is split before the section
    whose opening has the highest CRC level (nearest the middle on ties) until every pack fits, so
    editing one section changes its own pack, not every pack after it."""
    packs: list[list[Plan]] = []
    run: list[Plan] = []
    for plan in [*plans, None]:
        if plan is not None and plan.fits:
            run.append(plan)
            continue
        stack = [(0, len(run))] if run else []
        while stack:
            lo, hi = stack.pop()
            if hi - lo == 1 or _pack_fits(run[lo:hi], limit):
                packs.append(run[lo:hi])
                continue
            middle = (lo + hi) / 2
            at = max(range(lo + 1, hi), key=lambda i: (run[i].units[0].level, -abs(i - middle), -i))
            stack.append((at, hi))
            stack.append((lo, at))
        run = []
        if plan is not None:
            packs.append([plan])
    return packs
