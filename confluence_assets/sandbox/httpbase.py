"""The HTTP plumbing both servers share: a threaded standard-library server on 127.0.0.1, keep-alive,
request counting, fault injection, and a clean stop.

``ThreadingHTTPServer`` alone cannot stop cleanly while a client holds a keep-alive connection (the
handler thread waits on it), so the server tracks its connections and shuts them down on ``stop()``, then
joins every thread it started: tests see no leaked threads or ports.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from confluence_assets.sandbox.faults import Decision, FaultRules, Stats
from confluence_assets.sandbox.ratelimits import RateLimit, TokenBucket, Verdict

log = logging.getLogger(__name__)


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoded segments kept as sent
    target: str  # path and query, as sent
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    empty_page: bool = False  # set by a fault: serve an empty page that still has a next link

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def params(self, name: str) -> list[str]:
        """All values of a repeatable or comma-separated parameter."""
        out: list[str] = []
        for value in self.query.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None  # a streamed body of ``length`` bytes (attachment downloads)
    length: int | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        try:
            data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:
            # Text that is not valid Unicode (lone surrogates, e.g. a page body with invalid UTF-8
            # decoded with surrogateescape): sent as JSON \uXXXX escapes, as Java servers do.
            data = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode()
        return cls(status, data, headers=headers or {})


class App:
    """What a server answers. Subclasses route requests and shape errors the way their API does."""

    def endpoint(self, request: Request) -> str:
        """The stats/fault key of a request, e.g. ``"GET /wiki/rest/api/content/{id}"``."""
        raise NotImplementedError

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def fault_response(self, request: Request, decision: Decision) -> Response:
        raise NotImplementedError

    def rate_limited_response(self, request: Request, verdict: Verdict) -> Response:
        """The 429 of a request the server's token bucket refused (its headers are added after)."""
        return Response(429, b"Too Many Requests", "text/plain;charset=UTF-8")

    def response_headers(self, request: Request, endpoint: str) -> dict[str, str]:
        """Headers every response to ``request`` carries (trace ids, deprecation notices)."""
        return {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers and the clients' pools expect
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> tuple[Response, dict[str, str]] | None:
        """The response to this request and the headers every response gets (None when the connection was
        reset instead)."""
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=split.path,
            target=self.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        owner = self.server.owner
        app = owner.app
        endpoint = app.endpoint(request)
        owner.stats.record(endpoint, request.path)
        extra = app.response_headers(request, endpoint)
        verdict = owner.bucket.take() if owner.bucket is not None else None
        if verdict is not None:
            extra.update(verdict.headers)
            if not verdict.allowed:
                owner.stats.record_rate_limited()
                return app.rate_limited_response(request, verdict), extra
        decision = owner.faults.decide(endpoint, request.path, request.query)
        if decision is not None:
            # A stop ends a delay at once: the sandbox's stop must not wait for a slow answer.
            if decision.delay and owner.stopping.wait(decision.delay):
                self._reset()
                return None
            if decision.reset:
                self._reset()
                return None
            if decision.status is not None:
                return app.fault_response(request, decision), extra
            request.empty_page = decision.empty_page
        try:
            response = app.handle(request)
        except Exception:  # a sandbox bug must look like a server error, not a hung client
            log.exception("sandbox error on %s %s", request.method, request.target)
            response = app.fault_response(request, Decision(status=500))
        return response, extra

    def _serve_counted(self) -> None:
        # A request stops counting as in flight before its response is written: once the client has the
        # last byte it may start its next request (from another process, after a pool slot changed hands)
        # while this thread has not yet been scheduled again, and that must not read as one request too many.
        stats = self.server.owner.stats
        number = stats.begin(f"{self.command} {self.path.split('?')[0]} (client port {self.client_address[1]})")
        try:
            answer = self._serve()
        finally:
            stats.end(number)
        if answer is not None:
            self._write(*answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve_counted  # noqa: N815 - http.server's naming

    def _write(self, response: Response, extra: dict[str, str] | None = None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        streamed = response.chunks is not None
        self.send_header("Content-Length", str(response.length if streamed else len(response.body)))
        own = {name.lower() for name in response.headers}
        # The response's own headers win (a forced 429 says Remaining 0 whatever the bucket holds).
        headers = {**{k: v for k, v in (extra or {}).items() if k.lower() not in own}, **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
            for chunk in response.chunks or ():  # never held whole: a 2 GB download streams
                self.wfile.write(chunk)

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False  # we join our own threads in stop(), with a deadline

    def __init__(self, address: tuple[str, int], owner: ServerBase) -> None:
        self.owner = owner
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        with self._conn_lock:
            self._connections.add(request)
        worker = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True, name="sandbox-conn"
        )
        with self._conn_lock:
            self._workers.add(worker)
        worker.start()

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(request)
                self._workers.discard(threading.current_thread())

    def handle_error(self, request, client_address) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> list[threading.Thread]:
        with self._conn_lock:
            connections, workers = list(self._connections), list(self._workers)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return workers


class ServerBase:
    """Start/stop and context management for one app on ``host:port`` (port 0: a free one)."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.faults = FaultRules()
        self.stats = Stats()
        self.bucket: TokenBucket | None = None  # set_rate_limit: off by default
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()  # set by stop(): requests still in a fault's delay are reset

    def set_rate_limit(self, limit: RateLimit | None) -> TokenBucket | None:
        """Answer with rate-limit headers from a token bucket of ``limit`` (None: no rate limit, the default)."""
        self.bucket = TokenBucket(limit) if limit is not None else None
        return self.bucket

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return self._server.server_address[1]

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ServerBase:
        if self._server is None:
            self.stopping.clear()
            self._server = _Server((self.host, self.requested_port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="sandbox-http"
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        deadline = time.monotonic() + timeout
        for worker in server.close_connections():
            worker.join(max(0.0, deadline - time.monotonic()))
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._server = self._thread = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
