"""Throughput of the local embeddings server (all-MiniLM-L6-v2 on the CPU) through the openai client.

    .venv/bin/python bench/local_embeddings.py               # needs the local-embeddings extra
    .venv/bin/python bench/local_embeddings.py --inputs 128

Starts ``confluence-assets embeddings-server``'s server in this process (port 0), sends batches of 64
inputs of about 30, 120 and 250 word pieces (sentences of the handbook pages of bench/retrieval_corpus.py,
repeated to length) and prints inputs/s and word pieces/s per size, plus the model's load time. Torch uses
every core (2 on the development machine).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from retrieval_corpus import HANDBOOK  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--inputs", type=int, default=256, help="inputs per size (default 256)")
    p.add_argument("--batch", type=int, default=64, help="inputs per request (default 64)")
    args = p.parse_args(argv)

    import openai

    from confluence_assets.embeddings.local_model import LOCAL_MODEL, local_embeddings_server

    sentences = [text for sections in HANDBOOK.values() for text in sections.values()]
    with tempfile.TemporaryDirectory() as home:
        began = time.perf_counter()
        server = local_embeddings_server(Path(home)).start()
        print(f"model loaded (and extracted) in {time.perf_counter() - began:.1f} s")
        try:
            client = openai.OpenAI(api_key="bench", base_url=server.url)
            client.embeddings.create(model=LOCAL_MODEL, input=["warm up"])
            for target in (30, 120, 250):
                texts = []
                for i in range(args.inputs):
                    text = sentences[i % len(sentences)]
                    while server.source.count_tokens([text])[0] < target:
                        text += " " + sentences[(i + len(text)) % len(sentences)]
                    ids = server.source.tokenizer(text, add_special_tokens=False)["input_ids"][: target - 2]
                    texts.append(server.source.tokenizer.decode(ids))
                pieces = sum(server.source.count_tokens(texts))
                began = time.perf_counter()
                for start in range(0, len(texts), args.batch):
                    client.embeddings.create(model=LOCAL_MODEL, input=texts[start : start + args.batch])
                seconds = time.perf_counter() - began
                print(
                    f"~{target:>3} word pieces: {len(texts) / seconds:6.1f} inputs/s, {pieces / seconds:7.0f} pieces/s "
                    f"({len(texts)} inputs in {seconds:.1f} s)"
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
