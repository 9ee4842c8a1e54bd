"""The pipeline a user would build instead of us, run by bench/compare_langchain.py in its own venv.

    <langchain venv>/bin/python bench/langchain_pipeline.py '{"url": ..., "space": ..., ...}'

LangChain's ConfluenceLoader -> RecursiveCharacterTextSplitter (3,200 characters, 10 % overlap) ->
OpenAIEmbeddings -> PGVector, kept in sync with LangChain's incremental ``index()`` and an
SQLRecordManager (``cleanup="full"``: pages gone from the listing are deleted). Prints one JSON line:
seconds, documents loaded, chunks, and what ``index()`` reports (added, updated, skipped, deleted).
Imports nothing of confluence_assets: it runs where only LangChain is installed.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    from langchain_classic.indexes import SQLRecordManager, index
    from langchain_community.document_loaders import ConfluenceLoader
    from langchain_openai import OpenAIEmbeddings
    from langchain_postgres import PGVector
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    loader = ConfluenceLoader(
        url=config["url"],
        username=config["email"],
        api_key=config["api_token"],
        space_key=config["space"],
        limit=50,
        max_pages=config["max_pages"],
        # Without this the loader reads each page's restrictions, one request per page; with it, it indexes
        # restricted pages for everyone (LangChain has no permission model either way).
        include_restricted_content=True,
    )
    documents = loader.load()
    splitter = RecursiveCharacterTextSplitter(chunk_size=3200, chunk_overlap=320)
    chunks = splitter.split_documents(documents)
    embeddings = OpenAIEmbeddings(
        model="text-embedding-3-small",
        base_url=config["embeddings_url"],
        api_key=config["embeddings_key"],
        check_embedding_ctx_length=False,  # its context check downloads tiktoken data; offline here
    )
    store = PGVector(embeddings=embeddings, collection_name="confluence", connection=config["db_url"], use_jsonb=True)
    records = SQLRecordManager("pgvector/confluence", db_url=config["db_url"])
    records.create_schema()
    result = index(chunks, records, store, cleanup="full", source_id_key="source")
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "documents": len(documents),
                "chunks": len(chunks),
                "chunk_chars": sum(len(c.page_content) for c in chunks),
                **{k: result[k] for k in ("num_added", "num_updated", "num_skipped", "num_deleted")},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
