"""The embeddings sandbox through the openai client: inputs, formats, dimensions, usage, errors in
OpenAI's shape, deterministic unit vectors that retrieve a page by its words, and the counters."""

from __future__ import annotations

import base64
import math
import re
import struct

import openai
import pytest

from confluence_assets.sandbox import EmbeddingsServer, Site, generate_corpus
from confluence_assets.sandbox.lexical import cosine
from confluence_assets.tokens import estimate_tokens

MODEL = "text-embedding-3-small"


@pytest.fixture(scope="module")
def emb():
    with EmbeddingsServer() as server:
        yield server


@pytest.fixture
def client(emb):
    emb.stats.reset()
    emb.faults.clear()
    with openai.OpenAI(base_url=emb.url, api_key=emb.api_key, max_retries=0) as c:
        yield c


def norm(vector) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_string_and_list_inputs_with_usage(client, emb):
    one = client.embeddings.create(model=MODEL, input="How do I restart the broker?")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 1536
    assert one.usage.prompt_tokens == one.usage.total_tokens == estimate_tokens("How do I restart the broker?")
    texts = ["alpha beta", "gamma", "デプロイ手順"]
    many = client.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in many.data] == [0, 1, 2]
    assert many.usage.prompt_tokens == sum(estimate_tokens(t) for t in texts)
    assert many.model == MODEL


def test_base64_is_the_default_and_decodes_to_the_float_vector(client, emb):
    default = client.embeddings.create(model=MODEL, input="same text")
    floats = client.embeddings.create(model=MODEL, input="same text", encoding_format="float")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    raw = client.embeddings.with_raw_response.create(model=MODEL, input="same text", encoding_format="base64")
    payload = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<1536f", base64.b64decode(payload))  # little-endian float32
    assert decoded == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert raw.headers["openai-model"] == MODEL


def test_dimensions_and_models(client):
    small = client.embeddings.create(model=MODEL, input="text", dimensions=256, encoding_format="float")
    assert len(small.data[0].embedding) == 256 and norm(small.data[0].embedding) == pytest.approx(1.0)
    large = client.embeddings.create(model="text-embedding-3-large", input="text")
    assert len(large.data[0].embedding) == 3072
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-ada-002", input="text", dimensions=256)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="text", dimensions=4096)
    with pytest.raises(openai.NotFoundError) as info:
        client.embeddings.create(model="no-such-model", input="text")
    assert info.value.body["code"] == "model_not_found"


def test_vectors_are_deterministic_unit_length_and_lexical(client):
    texts = ["Restart the Kafka broker safely", "restart kafka brokers", "Quarterly marketing budget", ""]
    first = client.embeddings.create(model=MODEL, input=texts[:3], encoding_format="float").data
    again = client.embeddings.create(model=MODEL, input=texts[:3], encoding_format="float").data
    vectors = [d.embedding for d in first]
    assert vectors == [d.embedding for d in again]
    assert all(norm(v) == pytest.approx(1.0) for v in vectors)
    assert cosine(vectors[0], vectors[1]) > 0.4 > 0.1 > cosine(vectors[0], vectors[2])


def test_retrieval_finds_a_page_by_its_words(client):
    site = Site()
    info = generate_corpus(site, seed=11, spaces=1, pages_per_space=40, large_pages=0, empty_pages=0)
    pages = [site.pages[i] for i in info.page_ids["ENG"][1:]]
    chunks = []  # (page id, text): plain text in pieces, roughly as the pipeline embeds chunks
    for page in pages:
        text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.body))
        chunks += [(page.id, f"{page.title}\n{text[i : i + 2500]}") for i in range(0, max(1, len(text)), 2500)]
    vectors = [d.embedding for d in client.embeddings.create(model=MODEL, input=[c for _, c in chunks]).data]
    queries = [f"{info.codenames[p.id]} {p.title}" for p in pages]
    query_vectors = [d.embedding for d in client.embeddings.create(model=MODEL, input=queries).data]
    first = top3 = 0
    for page, q in zip(pages, query_vectors, strict=True):
        ranked = sorted(range(len(chunks)), key=lambda i: -cosine(q, vectors[i]))
        first += chunks[ranked[0]][0] == page.id
        top3 += page.id in [chunks[i][0] for i in ranked[:3]]
    assert top3 == len(pages) and first >= 0.95 * len(pages)


def test_counters(client, emb):
    client.embeddings.create(model=MODEL, input=["one", "two"])
    client.embeddings.create(model=MODEL, input="one")
    assert (emb.stats.requests, emb.stats.batches, emb.stats.inputs) == (3 - 1, 2, 3)
    assert emb.stats.tokens == 3 and emb.stats.times_embedded("one") == 2 and emb.stats.times_embedded("two") == 1
    assert emb.stats.by_model[MODEL] == 3 and emb.stats["POST /v1/embeddings"] == 2


def test_bad_key_is_401(emb):
    with openai.OpenAI(base_url=emb.url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.embeddings.create(model=MODEL, input="x")
    assert info.value.body["code"] == "invalid_api_key" and "sk-wrong" not in str(info.value)


def test_input_over_the_token_limit_is_400(client, emb):
    too_long = "word " * 8192
    assert estimate_tokens(too_long) > 8191
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input=["fine", too_long])
    assert "maximum context length is 8191 tokens" in info.value.message
    assert emb.stats.inputs == 0  # nothing of a refused batch was embedded
    fits = "word " * 8191
    assert client.embeddings.create(model=MODEL, input=fits).usage.prompt_tokens == 8191


def test_batches_over_2048_inputs_and_empty_inputs_are_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model=MODEL, input=["x"] * 2049)
    assert info.value.body["code"] == "array_above_max_length"
    assert len(client.embeddings.create(model=MODEL, input=["x"] * 2048).data) == 2048
    for empty in ("", [], ["ok", ""]):
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model=MODEL, input=empty)


def test_token_arrays_are_accepted(client):
    result = client.embeddings.create(model=MODEL, input=[[1, 2, 3], [4, 5]])
    assert len(result.data) == 2 and result.usage.prompt_tokens == 5
