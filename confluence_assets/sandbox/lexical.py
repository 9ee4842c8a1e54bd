"""Deterministic lexical embeddings: feature hashing of words and character trigrams.

A stand-in for an embedding model when OpenAI is out of reach: vectors are unit-length and identical for
identical input, and texts that share words (or word fragments) get a higher cosine similarity, so a
query that names a page's distinctive words finds that page. It knows nothing of meaning: synonyms,
paraphrases and translations are unrelated vectors. Not a semantic model.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter

_WORDS = re.compile(r"\w+")
WORD_WEIGHT = 1.0
TRIGRAM_WEIGHT = 0.35
_cache: dict[tuple[str, int], tuple[tuple[int, float], ...]] = {}
_CACHE_LIMIT = 200_000


def _features(word: str, dims: int) -> tuple[tuple[int, float], ...]:
    """Bucket and signed weight of the word itself and of its character trigrams (``#word#``)."""
    key = (word, dims)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    out: list[tuple[int, float]] = []
    for feature, weight in _word_features(word):
        h = zlib.crc32(feature.encode())
        out.append((h % dims, weight if h & 0x80000000 else -weight))
    result = tuple(out)
    if len(_cache) < _CACHE_LIMIT:
        _cache[key] = result
    return result


def _word_features(word: str):
    yield "w:" + word, WORD_WEIGHT
    padded = f"#{word}#"
    if len(padded) > 4:
        for i in range(len(padded) - 2):
            yield "c:" + padded[i : i + 3], TRIGRAM_WEIGHT


def embed(text: str, dims: int) -> list[float]:
    """A unit vector of ``dims`` floats for ``text``."""
    vector = [0.0] * dims
    counts = Counter(_WORDS.findall(text.lower()))
    for word, count in counts.items():
        scale = 1.0 + math.log(count)
        for index, weight in _features(word, dims):
            vector[index] += weight * scale
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # no words (empty, punctuation only): still a deterministic unit vector
        vector[zlib.crc32(text.encode()) % dims] = 1.0
        return vector
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))
