"""How much text an embedding model reads, so that chunks fit it: input limits of common models.

A model reads at most so many of its own tokens; past them it either refuses the input (OpenAI: HTTP 400)
or silently ignores the tail (sentence-transformers models, most local servers). The chunker sizes chunks
in :func:`confluence_assets.tokens.estimate_tokens` units, an upper-leaning estimate of OpenAI's cl100k
tokens, so the limit it is given is the model's limit translated into those units:

- OpenAI's models (cl100k): the estimate already over-counts, the limit is used as it is;
- other models (WordPiece, SentencePiece): their tokenizers cut words into more pieces than cl100k does,
  Korean, Japanese and Chinese above all (BERT's uncased vocabulary decomposes a Hangul syllable into
  jamo), so the limit is scaled by ``OTHER_TOKENIZER_FACTOR``, measured on the sandbox corpus and the real
  sample pages with all-MiniLM-L6-v2's tokenizer (bench/retrieval_eval.py prints what was truncated).

``EMBEDDING_MAX_INPUT_TOKENS`` (settings.py) gives the limit of a model not in the table, in the model's
own tokens; an unknown model without it gets ``UNKNOWN_MODEL_INPUT_TOKENS``, the smallest limit common
among open models.
"""

from __future__ import annotations

import math

# The model's input limit in its own tokens. Names as the providers spell them; matched case-insensitively,
# without an organisation prefix ("sentence-transformers/", "BAAI/") or an Ollama tag (":latest").
KNOWN_INPUT_TOKENS: dict[str, int] = {
    "text-embedding-3-small": 8191,
    "text-embedding-3-large": 8191,
    "text-embedding-ada-002": 8191,
    "all-minilm-l6-v2": 256,  # the sentence-transformers max_seq_length (BERT itself takes 512)
    "all-minilm-l12-v2": 256,
    "all-minilm": 256,  # Ollama's name
    "all-mpnet-base-v2": 384,
    "nomic-embed-text": 8192,
    "nomic-embed-text-v1": 8192,
    "nomic-embed-text-v1.5": 8192,
    "mxbai-embed-large": 512,
    "mxbai-embed-large-v1": 512,
    "bge-small-en-v1.5": 512,
    "bge-base-en-v1.5": 512,
    "bge-large-en-v1.5": 512,
    "bge-m3": 8192,
    "e5-small-v2": 512,
    "e5-base-v2": 512,
    "e5-large-v2": 512,
    "multilingual-e5-small": 512,
    "multilingual-e5-base": 512,
    "multilingual-e5-large": 512,
    "gte-small": 512,
    "gte-base": 512,
    "gte-large": 512,
    "snowflake-arctic-embed": 512,
    "jina-embeddings-v2-base-en": 8192,
    "embed-english-v3.0": 512,  # Cohere
    "embed-multilingual-v3.0": 512,
    "mistral-embed": 8192,
}
OPENAI_TOKENIZED = frozenset({"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"})
UNKNOWN_MODEL_INPUT_TOKENS = 512
SPECIAL_TOKENS = 2  # [CLS] and [SEP] (or <s> and </s>) that the model adds to every input
# Estimated tokens per model token that keep every chunk inside the model: all-MiniLM-L6-v2's WordPiece
# took at most 1.37 pieces per estimated token (median 0.91-0.99) on the chunks of the ten Korean sample
# pages and the English pages of bench/retrieval_corpus.py, cut at budgets 100-254; 1 / 0.7 = 1.43.
OTHER_TOKENIZER_FACTOR = 0.7
_MIN_LIMIT = 32  # the chunker's smallest budget


def _key(model: str) -> str:
    return model.strip().lower().rsplit("/", 1)[-1].split(":", 1)[0]


def model_input_tokens(model: str, configured: int | None = None) -> int:
    """The model's input limit in its own tokens: ``configured`` (EMBEDDING_MAX_INPUT_TOKENS), else the table."""
    if configured is not None:
        return configured
    return KNOWN_INPUT_TOKENS.get(_key(model), UNKNOWN_MODEL_INPUT_TOKENS)


def chunk_token_limit(model: str, configured: int | None = None) -> int:
    """The largest chunk, in ``estimate_tokens`` units, that the model reads whole."""
    limit = model_input_tokens(model, configured)
    if _key(model) in OPENAI_TOKENIZED:
        return limit
    return max(_MIN_LIMIT, math.floor((limit - SPECIAL_TOKENS) * OTHER_TOKENIZER_FACTOR))
