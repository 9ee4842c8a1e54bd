"""Deterministic lexical embeddings: feature hashing of words and character trigrams.

A stand-in for an embedding model when OpenAI is out of reach: vectors are unit-length and identical for
identical input, and texts that share words (or word fragments) get a higher cosine similarity, so a
query that names a page's distinctive words finds that page. It knows nothing of meaning: synonyms,
paraphrases and translations are unrelated vectors. Not a semantic model. Hashing into few dimensions
makes unrelated features collide: at 1,536 dimensions, over ~200 chunks, a query of a page's rare word
and title ranks that page first in all but about one case in a hundred, within the top three always;
fewer dimensions collide more.

A fixed prior stands in for document frequencies (which a stateless server cannot know): English function
words and the filler vocabulary of the sandbox's corpus generator weigh ``COMMON_WEIGHT`` of a rare word,
as an IDF would have them.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

from confluence_assets.sandbox.storage import ADJECTIVES, TOPICS, WORDS

_WORDS = re.compile(r"\w+")
WORD_WEIGHT = 1.0
TRIGRAM_WEIGHT = 0.35
COMMON_WEIGHT = 0.35
_FUNCTION_WORDS = (
    "a an and are as at be been but by can do does for from had has have if in into is it its not of on or our "
    "so than that the their then there these this those to was we were what when which who will with you your"
)
COMMON_WORDS = frozenset(_FUNCTION_WORDS.split()) | {w.lower() for w in (*WORDS, *TOPICS, *ADJECTIVES)}
_cache: dict[tuple[str, int], tuple[tuple[int, float], tuple[tuple[int, bool], ...]]] = {}
_CACHE_LIMIT = 200_000


def _features(word: str, dims: int) -> tuple[tuple[int, float], tuple[tuple[int, bool], ...]]:
    """The word's bucket and signed weight, and its character trigrams' (``#word#``) buckets and signs."""
    key = (word, dims)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    h = zlib.crc32(("w:" + word).encode())
    weight = WORD_WEIGHT * (COMMON_WEIGHT if word in COMMON_WORDS else 1.0)
    own = (h % dims, weight if h & 0x80000000 else -weight)
    padded = f"#{word}#"
    trigrams = []
    if len(padded) > 4:
        for i in range(len(padded) - 2):
            t = zlib.crc32(("c:" + padded[i : i + 3]).encode())
            trigrams.append((t % dims, bool(t & 0x80000000)))
    result = (own, tuple(trigrams))
    if len(_cache) < _CACHE_LIMIT:
        _cache[key] = result
    return result


def embed(text: str, dims: int) -> list[float]:
    """A unit vector of ``dims`` floats for ``text``.

    Every feature (word or trigram) counts sublinearly, 1 + log(count), so the trigrams every text shares
    ("ion", "er#") cannot drown the words that make a text distinctive.
    """
    vector = [0.0] * dims
    trigram_counts: Counter[tuple[int, bool]] = Counter()
    for word, count in Counter(_WORDS.findall(text.lower())).items():
        (index, weight), trigrams = _features(word, dims)
        vector[index] += weight * (1.0 + math.log(count))
        for trigram in trigrams:
            trigram_counts[trigram] += count
    for (index, positive), count in trigram_counts.items():
        weight = TRIGRAM_WEIGHT * (1.0 + math.log(count))
        vector[index] += weight if positive else -weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # no words (empty, punctuation only): still a deterministic unit vector
        vector[zlib.crc32(text.encode()) % dims] = 1.0
        return vector
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
