"""The extraction worker: ``python -m confluence_assets.extract.worker '<limits as JSON>'``.

It imports the extraction libraries once, limits its own address space (RLIMIT_AS, the memory limit)
and core dumps, then answers one JSON line per request line: ``{"path", "filename", "declared"}`` in,
an Extraction as a dict out. The protocol runs on a private copy of the original stdout; fd 1 is pointed
at stderr so that a library printing cannot corrupt it. After a MemoryError it answers and exits, since
a library's state may be broken; the pool starts another.
"""

from __future__ import annotations

import json
import os
import resource
import sys

PRELOAD = ("pypdfium2", "docx", "pptx", "python_calamine", "bs4", "markdownify", "charset_normalizer", "lxml.etree")


def _limit_self(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory_bytes = min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from confluence_assets.extract.run import extract_file, peak_rss_bytes
    from confluence_assets.extract.types import Limits

    limits = Limits(**json.loads(argv[1]))
    loaded = []
    for module in PRELOAD:  # paid once per worker, not once per file
        try:
            __import__(module)
            loaded.append(module)
        except ImportError:
            pass
    _limit_self(limits.memory_bytes)
    protocol.write(json.dumps({"ready": True, "pid": os.getpid(), "loaded": loaded, "rss": peak_rss_bytes()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        restart = False
        try:
            result = extract_file(request["path"], request.get("filename", ""), request.get("declared"), limits)
            restart = bool(result.details.get("restart"))
            answer = json.dumps(result.to_dict())
        except MemoryError:  # even the answer did not fit: say so in a line that needs no memory
            answer, restart = '{"status": "failed", "reason": "memory limit", "details": {"restart": true}}', True
        protocol.write(answer + "\n")
        if restart:
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
