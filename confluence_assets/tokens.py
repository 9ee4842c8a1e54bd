"""Token estimates for embedding-model limits, without downloading a vocabulary.

tiktoken would give exact counts for OpenAI models but fetches its BPE files from the internet on first
use, which our machines (and many air-gapped deployments) cannot do. This estimator over-counts on
purpose: it pre-tokenises roughly as cl100k does (words, numbers, punctuation, newlines) and charges
each piece at least what BPE typically does, so a chunk sized by it stays below a model's real input
limit. It is an estimate, not a tokenizer: callers keep a margin and handle a provider's "too long" error.
"""

from __future__ import annotations

import math
import re

# Letters/digits runs, single punctuation/symbols, newlines. Spaces are free: BPE merges a leading space
# into the next word.
_PIECES = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]|\n")


def estimate_tokens(text: str) -> int:
    """An upper-leaning estimate of how many tokens an OpenAI embedding model sees in ``text``."""
    total = 0
    for piece in _PIECES.findall(text):
        first = piece[0]
        if first.isascii() and first.isalpha():
            total += max(1, math.ceil(len(piece) / 4))
        elif first.isdigit():
            total += math.ceil(len(piece) / 3)
        elif first.isascii():
            total += 1  # punctuation, symbols, newlines
        else:
            # Non-ASCII: BPE spends roughly one token per UTF-8 byte beyond the first (accents 1,
            # CJK and Hangul 2, emoji 3), merging frequent ones; this errs high.
            total += max(1, len(first.encode("utf-8")) - 1)
    return total
