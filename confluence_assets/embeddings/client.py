"""Embedder: batches of texts to vectors, with limits respected and errors a user can act on.

Retries (429 honouring ``retry-after``, 5xx, timeouts) are the openai client's own. A batch that the
provider rejects as a whole (HTTP 400, typically one input over the model's token limit) is bisected so
that only the offending inputs are reported and every other input still gets its vector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import openai

from confluence_assets.embeddings.limits import chunk_token_limit
from confluence_assets.settings import OPENAI_API_KEY, SUPPORTED_DIMENSIONS
from confluence_assets.tokens import estimate_tokens

log = logging.getLogger(__name__)

MAX_INPUTS_PER_REQUEST = 2048  # OpenAI's limit per embeddings request
MODELS_WITHOUT_DIMENSIONS = frozenset({"text-embedding-ada-002"})


class EmbeddingError(RuntimeError):
    """The embedding provider failed for the whole run (after retries)."""


class EmbeddingAuthError(EmbeddingError):
    pass


class EmbeddingQuotaError(EmbeddingError):
    pass


class EmbeddingConfigError(EmbeddingError):
    pass


@dataclass
class EmbeddingStats:
    requests: int = 0
    inputs: int = 0
    tokens: int = 0
    # Inputs longer than the model reads (estimated, limits.py): truncated or refused by the provider.
    over_limit: int = 0


@dataclass
class EmbeddingResult:
    vectors: list[list[float] | None]
    rejected: dict[int, str] = field(default_factory=dict)  # input index -> provider's reason


class Embedder:
    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        api_key: str,
        base_url: str | None = None,
        batch_size: int = 256,
        max_batch_tokens: int = 250_000,
        max_retries: int = 5,
        timeout_seconds: float = 60.0,
        max_input_tokens: int | None = None,
    ) -> None:
        """``max_input_tokens``: the most the model reads, in ``estimate_tokens`` units
        (:func:`~confluence_assets.embeddings.limits.chunk_token_limit`); longer inputs are counted in
        ``stats.over_limit`` (None: the limit of ``model``)."""
        if dimensions not in SUPPORTED_DIMENSIONS:
            raise EmbeddingConfigError(
                f"embedding dimension {dimensions} has no column in archon_crawled_pages; "
                f"use one of {', '.join(map(str, SUPPORTED_DIMENSIONS))}"
            )
        if not api_key:
            raise EmbeddingConfigError(f"{OPENAI_API_KEY} is not set (any value works for a local server)")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = max(1, min(batch_size, MAX_INPUTS_PER_REQUEST))
        self.max_batch_tokens = max_batch_tokens
        self.base_url = base_url
        self.max_input_tokens = max_input_tokens if max_input_tokens is not None else chunk_token_limit(model)
        self.stats = EmbeddingStats()
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url or None, max_retries=max_retries, timeout=timeout_seconds
        )

    def embed(self, texts: list[str]) -> EmbeddingResult:
        """Vectors for ``texts`` in order; rejected inputs get None and a reason."""
        result = EmbeddingResult(vectors=[None] * len(texts))
        for start, end in self._batches(texts):
            self._embed_range(texts, start, end, result)
        return result

    def _batches(self, texts: list[str]):
        start, tokens = 0, 0
        for i, text in enumerate(texts):
            cost = estimate_tokens(text)
            self.stats.over_limit += cost > self.max_input_tokens
            if i > start and (i - start >= self.batch_size or tokens + cost > self.max_batch_tokens):
                yield start, i
                start, tokens = i, 0
            tokens += cost
        if start < len(texts):
            yield start, len(texts)

    def _embed_range(self, texts: list[str], start: int, end: int, result: EmbeddingResult) -> None:
        try:
            vectors = self._request(texts[start:end])
        except openai.BadRequestError as exc:
            if end - start == 1:
                result.rejected[start] = _message(exc)
                return
            middle = (start + end) // 2
            self._embed_range(texts, start, middle, result)
            self._embed_range(texts, middle, end, result)
            return
        result.vectors[start:end] = vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        kwargs = {} if self.model in MODELS_WITHOUT_DIMENSIONS else {"dimensions": self.dimensions}
        where = self.base_url or "api.openai.com"
        try:
            response = self._client.embeddings.create(model=self.model, input=batch, **kwargs)
        except openai.BadRequestError:
            self.stats.requests += 1
            raise
        except openai.AuthenticationError:
            raise EmbeddingAuthError(
                f"the embedding provider at {where} rejected the API key (HTTP 401): check OPENAI_API_KEY"
            ) from None
        except openai.RateLimitError as exc:
            if exc.code == "insufficient_quota":
                raise EmbeddingQuotaError(
                    f"the embedding provider at {where} reports the quota is exhausted: {_message(exc)}"
                ) from None
            raise EmbeddingError(f"still rate-limited by {where} after retries: {_message(exc)}") from None
        except openai.NotFoundError as exc:
            raise EmbeddingConfigError(
                f"the embedding provider at {where} answered HTTP 404 ({_message(exc)}): check OPENAI_BASE_URL "
                f"(OpenAI-compatible servers serve <base>/embeddings, the base usually ends in /v1) and "
                f"EMBEDDING_MODEL ({self.model})"
            ) from None
        except openai.APIStatusError as exc:
            raise EmbeddingError(
                f"the embedding provider at {where} failed with HTTP {exc.status_code} after retries: {_message(exc)}"
            ) from None
        except openai.APIConnectionError as exc:
            raise EmbeddingError(
                f"cannot reach the embedding provider at {where} ({type(exc).__name__}): check OPENAI_BASE_URL"
            ) from None
        self.stats.requests += 1
        self.stats.inputs += len(batch)
        self.stats.tokens += response.usage.total_tokens if response.usage else 0
        vectors = [item.embedding for item in sorted(response.data, key=lambda d: d.index)]
        if len(vectors) != len(batch):
            raise EmbeddingError(f"asked for {len(batch)} embeddings, got {len(vectors)}")
        if vectors and len(vectors[0]) != self.dimensions:
            raise EmbeddingConfigError(
                f"model {self.model} returned {len(vectors[0])}-dimensional vectors but "
                f"EMBEDDING_DIMENSIONS is {self.dimensions}"
            )
        return vectors


def _message(exc: openai.APIError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if body else None
    return str(message or exc)[:300]
