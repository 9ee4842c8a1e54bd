"""An OpenAI-compatible embeddings server (``POST /v1/embeddings``) for the openai client.

It answers as OpenAI does: ``input`` as a string, a list of strings or token arrays; ``dimensions``
(text-embedding-3 models only); ``encoding_format`` ``float`` or ``base64`` (little-endian float32, what
the client sends by default); ``usage`` tokens; errors in OpenAI's ``{"error": {...}}`` shape (401 for a
bad key, 400 for an input over 8,191 tokens, a batch over 2,048 inputs or over 300,000 tokens, 404 for an
unknown model). Vectors come from a :class:`VectorSource`: by default :class:`LexicalSource`
(:mod:`lexical`'s deterministic feature hashing, a lexical stand-in for offline use, not a semantic model;
token counts by :func:`confluence_assets.tokens.estimate_tokens`). ``confluence-assets embeddings-server``
serves a real model through the same wire format (:mod:`confluence_assets.embeddings.local_model`).

A source that truncates (a sentence-transformers model reads only its first word pieces) is not refused
an input over its limit, as OpenAI refuses one: the input is embedded from its head, counted in
``stats.truncated`` and logged, so that an index built before chunks were sized for the model still works
and the loss is visible.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from http import HTTPStatus
from typing import Protocol

from confluence_assets.sandbox.faults import Decision, Stats
from confluence_assets.sandbox.httpbase import App, Request, Response, ServerBase
from confluence_assets.sandbox.lexical import embed as lexical_embed
from confluence_assets.tokens import estimate_tokens

DEFAULT_API_KEY = "sk-sandbox-0000000000000000"  # noqa: S105 - the offline sandbox's fake key
MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUT_TOKENS = 8191
MAX_BATCH = 2048
MAX_REQUEST_TOKENS = 300_000
ENDPOINT = "POST /v1/embeddings"

log = logging.getLogger(__name__)


class VectorSource(Protocol):
    """What turns texts into vectors behind the wire format."""

    models: dict[str, int]  # model name -> native dimension
    shortenable: frozenset[str]  # models that accept a smaller ``dimensions`` (text-embedding-3-*)
    no_dimensions: frozenset[str]  # models that refuse ``dimensions`` at all (ada-002); others take their own
    max_input_tokens: int
    truncates: bool  # True: an input over the limit is embedded from its head; False: refused (HTTP 400)
    imitates_openai: bool  # True: errors word for word as OpenAI's; False: they also name the served model

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def embed(self, model: str, texts: list[str], dimensions: int) -> list[list[float]]: ...


class LexicalSource:
    """The sandbox's stand-in: feature hashing (:mod:`lexical`), OpenAI's model names and limits."""

    shortenable = frozenset({"text-embedding-3-small", "text-embedding-3-large"})
    no_dimensions = frozenset({"text-embedding-ada-002"})
    max_input_tokens = MAX_INPUT_TOKENS
    truncates = False
    imitates_openai = True

    def __init__(self, models: dict[str, int] | None = None) -> None:
        self.models = dict(models or MODELS)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(t) for t in texts]

    def embed(self, model: str, texts: list[str], dimensions: int) -> list[list[float]]:
        return [lexical_embed(t, dimensions) for t in texts]


class EmbeddingStats(Stats):
    """Request counts per endpoint plus what was embedded: ``requests`` (every POST, failed ones too),
    ``inputs`` and ``tokens`` (served ones only), per model, and how often each text was embedded."""

    def __init__(self) -> None:
        super().__init__()
        self._embed_lock = threading.Lock()
        self.inputs = 0
        self.tokens = 0
        self.batches = 0
        self.truncated = 0  # inputs over the model's limit, embedded from their head (truncating sources)
        self.by_model: Counter[str] = Counter()
        self._texts: Counter[bytes] = Counter()

    @property
    def requests(self) -> int:
        return self.count(ENDPOINT)

    def add(self, model: str, texts: list[str], tokens: int, truncated: int = 0) -> None:
        with self._embed_lock:
            self.batches += 1
            self.truncated += truncated
            self.inputs += len(texts)
            self.tokens += tokens
            self.by_model[model] += len(texts)
            for text in texts:
                self._texts[_digest(text)] += 1

    def times_embedded(self, text: str) -> int:
        """How many times ``text`` was sent and served (embedding reuse is measured with this)."""
        with self._embed_lock:
            return self._texts[_digest(text)]

    def reset(self) -> None:
        super().reset()
        with self._embed_lock:
            self.inputs = self.tokens = self.batches = self.truncated = 0
            self.by_model.clear()
            self._texts.clear()


def _digest(text: str) -> bytes:
    return hashlib.sha1(text.encode()).digest()  # noqa: S324 - a counter key, not security


class _Invalid(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind


def _error(status: int, message: str, *, kind: str = "invalid_request_error", param=None, code=None) -> Response:
    payload = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response.json(status, payload, {"x-request-id": f"req_{uuid.uuid4().hex}"})


class EmbeddingsApp(App):
    """OpenAI's embeddings API over a :class:`VectorSource`; ``api_key`` None accepts any bearer key."""

    def __init__(self, api_key: str | None, source: VectorSource, stats: EmbeddingStats) -> None:
        self.api_key = api_key
        self.source = source
        self.models = source.models
        self.stats = stats

    def endpoint(self, request: Request) -> str:
        path = request.path.rstrip("/")
        if path in ("/v1/embeddings", "/v1/models"):
            return f"{request.method} {path}"
        return f"{request.method} {request.path}"

    def handle(self, request: Request) -> Response:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if self.api_key is not None and key.strip() != self.api_key:
            return _error(
                401,
                "Incorrect API key provided: sk-***. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        endpoint = self.endpoint(request)
        if endpoint == "GET /v1/models":
            data = [{"id": m, "object": "model", "created": 1705953180, "owned_by": "system"} for m in self.models]
            return Response.json(200, {"object": "list", "data": data})
        if endpoint != ENDPOINT:
            return _error(404, f"Invalid URL ({request.method} {request.path})")
        try:
            return self._embeddings(request)
        except _Invalid as exc:
            return _error(exc.status, exc.message, kind=exc.kind, param=exc.param, code=exc.code)

    def _embeddings(self, request: Request) -> Response:
        began = time.monotonic()
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            raise _Invalid(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly.)",
            ) from None
        if not isinstance(body, dict):
            raise _Invalid(400, "Invalid type for request body: expected an object.")
        model = body.get("model")
        if not model:
            raise _Invalid(400, "you must provide a model parameter", param="model")
        native = self.models.get(model)
        if native is None:
            # OpenAI's words; a server of our own model also says which model it serves.
            served = "" if self.source.imitates_openai else f" (this server serves {', '.join(self.models)})"
            raise _Invalid(
                404,
                f"The model `{model}` does not exist or you do not have access to it{served}.",
                code="model_not_found",
            )
        dims = self._dimensions(body.get("dimensions"), model, native)
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise _Invalid(
                400,
                f"Invalid value for 'encoding_format': '{encoding}'. Supported values are: 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        texts, counts = self._inputs(body.get("input"))
        limit = self.source.max_input_tokens
        truncated = sum(n > limit for n in counts)
        if truncated:
            log.warning(
                "%d of %d inputs over %s's %d tokens: embedded from their head", truncated, len(texts), model, limit
            )
        vectors = self.source.embed(model, texts, dims)
        total = sum(min(n, limit) for n in counts)
        self.stats.add(model, texts, total, truncated)
        data = []
        for i, vector in enumerate(vectors):
            value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if encoding == "base64" else vector
            data.append({"object": "embedding", "index": i, "embedding": value})
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": total, "total_tokens": total},
        }
        headers = {
            "openai-model": model,
            "openai-processing-ms": str(int((time.monotonic() - began) * 1000)),
            "openai-version": "2020-10-01",
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
        }
        return Response.json(200, payload, headers)

    def _dimensions(self, value: object, model: str, native: int) -> int:
        if value is None:
            return native
        if model in self.source.no_dimensions:
            raise _Invalid(400, "This model does not support specifying dimensions.", param="dimensions")
        if model not in self.source.shortenable and value != native:
            raise _Invalid(
                400,
                f"Invalid value for 'dimensions' = {value}: {model} makes {native}-dimensional vectors only.",
                param="dimensions",
                code="invalid_value",
            )
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= native:
            raise _Invalid(
                400,
                f"Invalid value for 'dimensions' = {value}. Must be an integer between 1 and {native}.",
                param="dimensions",
                code="invalid_value",
            )
        return value

    def _inputs(self, raw: object) -> tuple[list[str], list[int]]:
        """The texts to embed and their token counts; token arrays become text of their ids."""
        if isinstance(raw, str):
            items: list = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
            items = [raw]  # one token array
        elif isinstance(raw, list):
            items = raw
        else:
            raise _Invalid(400, "'input' is a required property", param="input")
        if not items or any(i == "" or i == [] for i in items):
            raise _Invalid(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            )
        if len(items) > MAX_BATCH:
            raise _Invalid(
                400,
                f"Invalid 'input': array too long. Expected an array with maximum length {MAX_BATCH}, "
                f"but got an array with length {len(items)} instead.",
                param="input",
                code="array_above_max_length",
            )
        texts: list[str] = []
        token_arrays: dict[int, int] = {}  # input index -> its length, for token-array inputs
        for item in items:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item):
                token_arrays[len(texts)] = len(item)
                texts.append(" ".join(f"t{t}" for t in item))
            else:
                raise _Invalid(
                    400,
                    "'$.input' is invalid. Please check the API reference: "
                    "https://platform.openai.com/docs/api-reference.",
                )
        counts = self.source.count_tokens(texts)
        for i, n in token_arrays.items():
            counts[i] = n
        limit = self.source.max_input_tokens
        for n in counts:
            if n > limit and not self.source.truncates:
                raise _Invalid(
                    400,
                    f"This model's maximum context length is {limit} tokens, however you "
                    f"requested {n} tokens ({n} in your prompt; 0 for the completion). Please reduce your "
                    "prompt; or completion length.",
                )
        if sum(counts) > MAX_REQUEST_TOKENS:
            raise _Invalid(
                400,
                f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request",
                code="max_tokens_per_request",
            )
        return texts, counts

    def fault_response(self, request: Request, decision: Decision) -> Response:
        status = decision.status or 500
        headers: dict[str, str] = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        if decision.retry_after is not None:
            seconds = decision.retry_after
            headers["retry-after"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
            headers["retry-after-ms"] = str(int(seconds * 1000))
        if decision.body is not None:
            return Response(status, decision.body.encode(), "text/plain", headers)
        if status == 429:
            message = (
                "Rate limit reached for requests in organization org-sandbox on requests per min (RPM): "
                "Limit 3000, Used 3000, Requested 1. Please try again later."
            )
            response = _error(429, message, kind="requests", code="rate_limit_exceeded")
        elif status == 502:
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(502, page, "text/html", headers)
        elif status >= 500:
            message = (
                "The server is overloaded or not ready yet."
                if status == 503
                else "The server had an error while processing your request. Sorry about that!"
            )
            response = _error(status, message, kind="server_error")
        else:
            response = _error(status, HTTPStatus(status).phrase)
        response.headers.update(headers)
        return response


class EmbeddingsServer(ServerBase):
    """A running embeddings sandbox: ``url`` (for ``OPENAI_BASE_URL``), ``api_key``, ``faults``, ``stats``."""

    stats: EmbeddingStats

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = DEFAULT_API_KEY,
        models: dict[str, int] | None = None,
        source: VectorSource | None = None,
    ) -> None:
        """``source`` (default: the lexical stand-in over ``models``) makes the vectors; ``api_key`` None
        accepts any bearer key (a local server on a loopback address)."""
        stats = EmbeddingStats()
        self.source = source or LexicalSource(models)
        super().__init__(EmbeddingsApp(api_key, self.source, stats), host=host, port=port)
        self.stats = stats
        self.api_key = api_key

    def __enter__(self) -> EmbeddingsServer:
        self.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"
