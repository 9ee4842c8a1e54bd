"""The servers as processes see them: up in well under a second, concurrent clients, 1 MB+ bodies, a
clean stop (no leaked threads or ports, even with keep-alive connections open), and the CLI demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from atlassian import Confluence
from requests import HTTPError

from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

CLI = str(Path(sys.executable).parent / "confluence-assets")


@pytest.fixture(scope="module")
def site() -> Site:
    site = Site()
    generate_corpus(site, seed=5, spaces=2, pages_per_space=100, large_pages=2)
    return site


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_both_servers_start_in_well_under_a_second_and_stop_cleanly(site):
    threads_before = threading.active_count()
    began = time.perf_counter()
    conf, emb = ConfluenceServer(site).start(), EmbeddingsServer().start()
    startup = time.perf_counter() - began
    print(f"both servers up in {startup * 1000:.1f} ms")
    assert startup < 1.0
    ports = (conf.port, emb.port)
    # Clients that keep their connections open must not hold the stop up.
    c = Confluence(conf.url, username=conf.email, password=conf.api_token)
    c.get_space("ENG")
    o = openai.OpenAI(base_url=emb.url, api_key=emb.api_key)
    o.embeddings.create(model="text-embedding-3-small", input="x")
    began = time.perf_counter()
    conf.stop()
    emb.stop()
    assert time.perf_counter() - began < 1.0
    assert threading.active_count() == threads_before
    assert not any(port_open(p) for p in ports)
    c.close()
    o.close()


def test_concurrent_clients_and_a_slow_one(site):
    outcome: list[BaseException | dict] = []

    def slow_client() -> None:
        try:
            outcome.append(Confluence(conf.url, token=conf.pat).get_space("ENG"))
        except Exception as error:  # the stop below resets the delayed request
            outcome.append(error)

    with ConfluenceServer(site) as conf:
        # Far longer than the work below, however slow the machine; the stop ends it.
        conf.faults.add("GET /wiki/rest/api/space/{key}", delay=120)
        slow = threading.Thread(target=slow_client)
        slow.start()
        pages = site.live_pages("ENG")

        def work(offset: int) -> int:
            with Confluence(conf.url, username=conf.email, password=conf.api_token) as c:
                return sum(c.get_page_by_id(p.id, expand="version")["version"]["number"] for p in pages[offset::8])

        with ThreadPoolExecutor(8) as pool:
            total = sum(pool.map(work, range(8)))
        assert slow.is_alive() and not outcome  # eight clients were served while the slow request still waited
        assert total == sum(p.version for p in pages)
        assert conf.stats["GET /wiki/rest/api/content/{id}"] == len(pages)
        began = time.perf_counter()
    slow.join(10)
    assert not slow.is_alive() and time.perf_counter() - began < 5  # the stop did not wait out the delay
    assert len(outcome) == 1 and isinstance(outcome[0], Exception)


def test_large_pages_are_served_whole(site):
    large = [p for p in site.pages.values() if len(p.body) >= 1_000_000]
    assert len(large) == 2
    with ConfluenceServer(site) as conf, Confluence(conf.url, token=conf.pat) as c:
        began = time.perf_counter()
        for page in large:
            got = c.get_page_by_id(page.id, expand="body.storage")
            assert got["body"]["storage"]["value"] == page.body
        search = c.get("rest/api/content/search", params={"cql": "space in (ENG, OPS)", "expand": "body.storage",
                                                         "limit": 50})  # fmt: skip
        assert search["size"] == 50
        assert time.perf_counter() - began < 5.0


def start_sandbox_cli(
    *flags: str, env: dict[str, str], sigint_ignored: bool = False
) -> tuple[subprocess.Popen, dict[str, str], list[str]]:
    """Start `confluence-assets sandbox` on free ports; returns the process, its export lines and its output.
    ``sigint_ignored``: start it as a background job of a non-interactive shell would (SIGINT ignored)."""
    proc = subprocess.Popen(
        [CLI, "sandbox", "--confluence-port", "0", "--embeddings-port", "0", "--spaces", "1", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )  # fmt: skip
    exports: dict[str, str] = {}
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
        if line.startswith("Serving until") or not line:
            break
    return proc, exports, lines


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_both_prints_the_environment_and_stops_on_signals(sig):
    # Started with SIGINT ignored, as a background job of a non-interactive shell (CI) starts it: the
    # sandbox must still stop on SIGINT.
    proc, exports, lines = start_sandbox_cli(
        "--pages-per-space", "30", "--embeddings-faults", "status=429,retry_after=0.01,times=1",
        env={"SANDBOX_LATENCY": "0"}, sigint_ignored=True,
    )  # fmt: skip
    try:
        assert {"CONFLUENCE_URL", "CONFLUENCE_EMAIL", "CONFLUENCE_API_TOKEN", "OPENAI_BASE_URL", "OPENAI_API_KEY",
                "CONFLUENCE_SITE_TIMEZONE"} <= set(exports), lines  # fmt: skip
        assert "not a semantic model" in "".join(lines)
        with Confluence(exports["CONFLUENCE_URL"], username=exports["CONFLUENCE_EMAIL"],
                        password=exports["CONFLUENCE_API_TOKEN"]) as c:  # fmt: skip
            assert c.cql('space = "QM" and type = page', limit=100)["size"] == 34
            assert c.get_space("ENG")["key"] == "ENG"
        with openai.OpenAI(base_url=exports["OPENAI_BASE_URL"], api_key=exports["OPENAI_API_KEY"]) as o:
            assert len(o.embeddings.create(model="text-embedding-3-small", input="x").data) == 1  # after one 429
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
        assert "sandbox stopped" in proc.stdout.read()
    finally:
        stop(proc)


def test_cli_takes_latency_and_faults_from_the_environment_for_a_demo():
    proc, exports, lines = start_sandbox_cli(
        "--pages-per-space", "5",
        env={
            "SANDBOX_LATENCY": "0.3",
            "SANDBOX_CONFLUENCE_FAULTS": "endpoint=GET /wiki/rest/api/space/*,status=503,times=1",
            "SANDBOX_EMBEDDINGS_FAULTS": "status=500,times=1",
        },
    )  # fmt: skip
    try:
        assert "CONFLUENCE_URL" in exports, lines
        with Confluence(exports["CONFLUENCE_URL"], username=exports["CONFLUENCE_EMAIL"],
                        password=exports["CONFLUENCE_API_TOKEN"]) as c:  # fmt: skip
            with pytest.raises(HTTPError) as refused:
                c.get_space("QM")
            assert refused.value.response.status_code == 503
            began = time.monotonic()
            assert c.get_space("QM")["key"] == "QM"  # the rule fired once
            assert time.monotonic() - began >= 0.3  # and every request waits the latency
        with openai.OpenAI(base_url=exports["OPENAI_BASE_URL"], api_key=exports["OPENAI_API_KEY"], max_retries=0) as o:
            with pytest.raises(openai.InternalServerError):
                o.embeddings.create(model="text-embedding-3-small", input="x")
            assert len(o.embeddings.create(model="text-embedding-3-small", input="x").data) == 1
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--timezone", "Mars/Base"], "unknown time zone"), (["--faults", "colour=red"], "unknown fault option")],
)
def test_cli_refuses_bad_settings_in_one_line(flags, message):
    args = [CLI, "sandbox", "--confluence-port", "0", "--embeddings-port", "0", "--pages-per-space", "5", *flags]
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
