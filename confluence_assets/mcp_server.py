"""``confluence-assets mcp``: the synced pages as MCP tools for agents, on the official ``mcp`` SDK (the
optional extra ``mcp``): search, read a page, list spaces and children, and the metadata questions.

Plain Python over the search layer (``SearchService``, ``metadata_queries``, ``pages``); no Dagster. Every
tool runs as the connection's principal and nothing else: over stdio the one configured for the process
(``--as-user`` / ``CONFLUENCE_MCP_AS_USER``; neither: nobody named, as ``confluence-assets search``); over
streamable HTTP the one the request's bearer token maps to (``mcp_auth``; no valid token, no answer).
A page the principal may not read is "not found", word for word what a page that does not exist gets.
Bad arguments come back as a one-line tool error, never a traceback.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import psycopg
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field, ValidationError

from confluence_assets import __version__
from confluence_assets.mcp_auth import TokenTable, bearer_from_value
from confluence_assets.search import metadata_queries as mq
from confluence_assets.search import pages
from confluence_assets.search.errors import SearchError
from confluence_assets.search.filters import InvalidFilterError, SearchFilters, parse_since
from confluence_assets.search.hybrid import MAX_LIMIT, MODES, SearchArgumentError
from confluence_assets.search.principal import Principal
from confluence_assets.search.service import SearchService

log = logging.getLogger(__name__)

MAX_PAGES = 50
MAX_CHUNKS_PER_PAGE = 10
MAX_LIST = 500
INSTRUCTIONS = (
    "Search and read the Confluence pages synced into this index, as the principal this connection is "
    "configured with: a page it may not read does not exist here. Start with `search` (page-level results "
    "with their best chunks and citations), then `read_page` for a whole page. Cite pages by their url."
)

PrincipalOf = Callable[[Context | None], Principal]

Spaces = Annotated[list[str] | None, Field(description="space keys: pages in any of them")]
Limit = Annotated[int, Field(description=f"at most this many pages (1-{MAX_LIST})")]
PageId = Annotated[str, Field(description="a page's Confluence id (numeric)")]
IssueKey = Annotated[str, Field(description="a Jira issue key, PROJECT-123")]
AccountId = Annotated[str, Field(description="a Confluence account id (a user key or username on Data Center)")]


class ConfluenceMCP(MCPServer):
    """MCPServer whose argument errors are one line: "invalid arguments for search: limit: Input should
    be a valid integer" instead of pydantic's multi-line report."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in cause.errors()
                )
                raise ToolError(f"invalid arguments for {name}: {problems}") from None
            raise ToolError(" ".join(str(exc).split())) from None


class Tools:
    """The tools' bodies over one SearchService; calls are serialised on its connection (the SDK runs
    synchronous tools in worker threads)."""

    def __init__(
        self, service: SearchService, principal_of: PrincipalOf, reconnect: Callable[[], psycopg.Connection] | None
    ) -> None:
        self.service = service
        self.principal_of = principal_of
        self.reconnect = reconnect
        self.lock = threading.Lock()

    def run(self, ctx: Context | None, work: Callable[[psycopg.Connection, Principal], Any]) -> Any:
        principal = self.principal_of(ctx)
        try:
            with self.lock:
                return self._with_connection(work, principal)
        except (SearchError, InvalidFilterError, SearchArgumentError) as exc:
            raise ToolError(_one_line(exc)) from None
        except (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject):
            raise ToolError("the database has no search functions yet: run confluence-assets migrate") from None
        except psycopg.Error as exc:
            raise ToolError(f"database error: {_one_line(exc)}") from None

    def _with_connection(self, work: Callable[[psycopg.Connection, Principal], Any], principal: Principal) -> Any:
        """``work`` on the service's connection; one that was lost (the database restarted, the session was
        terminated) is opened again and the call repeated once (every tool only reads)."""
        for attempt in (1, 2):
            conn = self.service.conn
            if (conn.closed or conn.broken) and self.reconnect is not None:
                self.service.conn = conn = self.reconnect()
            try:
                return work(conn, principal)
            except psycopg.OperationalError:
                if attempt == 2 or self.reconnect is None or not (conn.closed or conn.broken):
                    raise
                log.warning("the database connection was lost: connecting again")
        raise AssertionError("unreachable")  # pragma: no cover

    def search(self, ctx, query: str, filters: SearchFilters, mode: str | None, limit: int, per_page: int) -> dict:
        if not isinstance(query, str) or not query.strip():
            raise ToolError("query must be a non-empty text")
        if not 1 <= limit <= MAX_PAGES:
            raise ToolError(f"limit must be between 1 and {MAX_PAGES} pages, not {limit}")
        if not 1 <= per_page <= MAX_CHUNKS_PER_PAGE:
            raise ToolError(f"chunks_per_page must be between 1 and {MAX_CHUNKS_PER_PAGE}, not {per_page}")
        chosen = mode or ("hybrid" if self.service.embedder is not None else "keyword")
        if chosen not in MODES:
            raise ToolError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        candidates = min(MAX_LIMIT, max(limit * per_page * 3, 30))

        def work(conn, principal):
            results = self.service.search(query, filters, limit=candidates, mode=chosen, principal=principal)
            return {"principal": principal.kind, "mode": chosen, "pages": pages.group_by_page(results, limit, per_page)}

        return self.run(ctx, work)

    def read_page(self, ctx, page_id: str) -> dict:
        def work(conn, principal):
            document = pages.read_page(conn, page_id, principal)
            if document is None:
                raise ToolError(_not_found(page_id))
            return document.to_dict()

        return self.run(ctx, work)

    def list_spaces(self, ctx) -> dict:
        return self.run(ctx, lambda conn, p: {"spaces": [s.to_dict() for s in pages.readable_spaces(conn, p)]})

    def about_page(self, ctx, page_id: str, query: Callable[[Principal], mq.Query]) -> dict:
        """A question about one page (its children, the pages linking to it): "not found" unless the
        principal may read that page."""

        def work(conn, principal):
            if not pages.is_readable(conn, page_id, principal):
                raise ToolError(_not_found(page_id))
            return {"pages": [r.to_dict() for r in mq.run(conn, query(principal))]}

        return self.run(ctx, work)

    def pages_where(self, ctx, query: Callable[[Principal], mq.Query]) -> dict:
        return self.run(ctx, lambda conn, principal: {"pages": [r.to_dict() for r in mq.run(conn, query(principal))]})


def build_server(
    service: SearchService, principal_of: PrincipalOf, reconnect: Callable[[], psycopg.Connection] | None = None
) -> ConfluenceMCP:
    """The MCP server with its tools; ``principal_of`` names the principal of a tool call's connection;
    ``reconnect`` opens a new database connection when the service's was lost (a restart of the database)."""
    server = ConfluenceMCP("confluence-assets", version=__version__, instructions=INSTRUCTIONS)
    tools = Tools(service, principal_of, reconnect)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    def search(
        query: Annotated[str, Field(description='what to look for; "phrases", or, and -exclusions work')],
        spaces: Spaces = None,
        labels: Annotated[list[str] | None, Field(description="pages with every one of these labels")] = None,
        jira_keys: Annotated[list[str] | None, Field(description="pages linking every one of these issues")] = None,
        mentions: Annotated[list[str] | None, Field(description="account ids every page mentions")] = None,
        authors: Annotated[list[str] | None, Field(description="account ids of page creators (any)")] = None,
        under_page_id: Annotated[str | None, Field(description="this page and the pages below it")] = None,
        modified_since: Annotated[str | None, Field(description="YYYY-MM-DD or ISO 8601 (UTC if no offset)")] = None,
        mode: Annotated[str | None, Field(description="hybrid (default with embeddings), vector or keyword")] = None,
        limit: Annotated[int, Field(description=f"pages to return (1-{MAX_PAGES})")] = 10,
        chunks_per_page: Annotated[int, Field(description=f"best chunks per page (1-{MAX_CHUNKS_PER_PAGE})")] = 3,
        ctx: Context | None = None,
    ) -> dict:
        """Search the synced Confluence pages (hybrid: meaning + keywords). Returns pages, best first, each
        with its best chunks and a citation (Confluence URL and breadcrumb) per chunk."""
        try:
            filters = SearchFilters(
                spaces=tuple(spaces or ()),
                labels=tuple(labels or ()),
                jira_keys=tuple(jira_keys or ()),
                mentions=tuple(mentions or ()),
                authors=tuple(authors or ()),
                under_page_id=under_page_id,
                modified_since=parse_since(modified_since) if modified_since else None,
            ).validated()
        except InvalidFilterError as exc:
            raise ToolError(_one_line(exc)) from None
        return tools.search(ctx, query, filters, mode, limit, chunks_per_page)

    @server.tool(annotations=read_only)
    def read_page(page_id: PageId, ctx: Context | None = None) -> dict:
        """One page in full: its Markdown, breadcrumb, labels, authors, Jira links, mentions, links, headings."""
        return tools.read_page(ctx, page_id)

    @server.tool(annotations=read_only)
    def list_spaces(ctx: Context | None = None) -> dict:
        """The spaces with pages this connection may read: key, name, URL, readable pages."""
        return tools.list_spaces(ctx)

    @server.tool(annotations=read_only)
    def list_children(page_id: PageId, limit: Limit = 200, ctx: Context | None = None) -> dict:
        """The child pages of a page (those this connection may read), by title."""
        _check_limit(limit)
        return tools.about_page(ctx, page_id, lambda p: mq.children_query(page_id, limit=limit, principal=p))

    @server.tool(annotations=read_only)
    def pages_linking_to(page_id: PageId, spaces: Spaces = None, limit: Limit = 200, ctx: Context | None = None):
        """The pages that link to a page."""
        _check_limit(limit)
        spaces_ = tuple(spaces or ())
        return tools.about_page(
            ctx, page_id, lambda p: mq.pages_linking_to_query(page_id, spaces=spaces_, limit=limit, principal=p)
        )

    @server.tool(annotations=read_only)
    def pages_with_jira_key(
        issue_key: Annotated[str, Field(description="PROJECT-123")],
        spaces: Spaces = None,
        limit: Limit = 200,
        ctx: Context | None = None,
    ):
        """The pages that link a Jira issue (PROJECT-123)."""
        _check_limit(limit)
        q = mq.pages_with_jira_key_query
        return tools.pages_where(ctx, lambda p: q(issue_key, spaces=tuple(spaces or ()), limit=limit, principal=p))

    @server.tool(annotations=read_only)
    def pages_with_label(label: str, spaces: Spaces = None, limit: Limit = 200, ctx: Context | None = None):
        """The pages with a label."""
        _check_limit(limit)
        q = mq.pages_with_label_query
        return tools.pages_where(ctx, lambda p: q(label, spaces=tuple(spaces or ()), limit=limit, principal=p))

    @server.tool(annotations=read_only)
    def pages_mentioning(account_id: AccountId, spaces: Spaces = None, limit: Limit = 200, ctx: Context | None = None):
        """The pages that mention a user (by Confluence account id)."""
        _check_limit(limit)
        q = mq.pages_mentioning_user_query
        return tools.pages_where(ctx, lambda p: q(account_id, spaces=tuple(spaces or ()), limit=limit, principal=p))

    @server.tool(annotations=read_only)
    def pages_by_author(account_id: AccountId, spaces: Spaces = None, limit: Limit = 200, ctx: Context | None = None):
        """The pages a user created (by Confluence account id)."""
        _check_limit(limit)
        q = mq.pages_by_author_query
        return tools.pages_where(ctx, lambda p: q(account_id, spaces=tuple(spaces or ()), limit=limit, principal=p))

    return server


def fixed_principal(principal: Principal) -> PrincipalOf:
    """stdio: one process, one client, one principal."""
    return lambda ctx: principal


def principal_from_bearer(tokens: TokenTable) -> PrincipalOf:
    """HTTP: the principal of the request's own bearer token (checked again here, after the middleware
    that refused every request without a known one), so no call can run as anybody else."""

    def principal_of(ctx: Context | None) -> Principal:
        headers = ctx.headers if ctx is not None else None
        principal = tokens.principal_for(bearer_from_value(headers.get("authorization")) if headers else None)
        if principal is None:
            raise ToolError("unauthorized: this request carries no configured bearer token")
        return principal

    return principal_of


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST:
        raise ToolError(f"limit must be between 1 and {MAX_LIST}, not {limit}")


def _not_found(page_id: object) -> str:
    return f"page {str(page_id)[:64]!r} not found"


def _one_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_stdio(server: ConfluenceMCP) -> None:
    """Serve one client over stdin/stdout until it closes them (logs go to stderr)."""
    server.run("stdio")


def run_http(server: ConfluenceMCP, tokens: TokenTable, host: str, port: int) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp``, every request behind the bearer check."""
    import uvicorn

    from confluence_assets.mcp_auth import require_bearer

    app = require_bearer(server.streamable_http_app(host=host), tokens)
    # No access log: request lines carry no token, but nothing about a request needs to be logged either.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8000`` for IPv6) -> (host, port); ValueError with one line otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SetupError(f"--http needs HOST:PORT such as 127.0.0.1:8765, got {value!r}")
    return host, int(port)


class SetupError(ValueError):
    """The server cannot start as configured; one line saying what to change."""


def serve(
    database_url: str | None,
    *,
    http: str | None = None,
    as_user: str | None = None,
    as_service_account: bool = False,
    tokens_file: str | None = None,
) -> None:
    """``confluence-assets mcp``: stdio as the configured principal, or streamable HTTP behind bearer tokens."""
    from confluence_assets import settings
    from confluence_assets.mcp_auth import TokenFileError, load_tokens, principal_from_spec

    loaded = settings.load()
    address = None
    if http:
        address = parse_address(http)
        if as_user is not None or as_service_account:
            raise SetupError("over HTTP each request searches as its bearer token's principal: drop --as-user")
    elif tokens_file:
        raise SetupError("--tokens-file is for --http; over stdio give the principal with --as-user")
    if as_user is not None and as_service_account:
        raise SetupError("--as-user and --as-service-account exclude each other: search as one of them")
    path = Path(tokens_file) if tokens_file else loaded.mcp.tokens_file
    if address is not None and path is None:
        raise SetupError(
            f"--http needs bearer tokens: set {settings.CONFLUENCE_MCP_TOKENS_FILE} or --tokens-file "
            "(one '<token> <principal>' a line; see README, MCP server)"
        )
    from confluence_assets.db.connection import connect, resolve_database

    try:
        service = SearchService.from_env(database_url, need_embedder=bool(loaded.embeddings.api_key))
    except SearchError as exc:
        raise SetupError(_one_line(exc)) from None
    url = resolve_database(database_url).url

    def reconnect() -> psycopg.Connection:
        return connect(url, autocommit=True)

    with service:
        try:
            if address is None:
                spec = "@service-account" if as_service_account else (as_user or loaded.mcp.as_user)
                principal = principal_from_spec(service.conn, spec)
                log.info("MCP over stdio as %s", principal.kind)
                run_stdio(build_server(service, fixed_principal(principal), reconnect))
                return
            tokens = load_tokens(service.conn, path)
        except (SearchError, TokenFileError) as exc:
            raise SetupError(_one_line(exc)) from None
        host, port = address
        print(f"MCP over streamable HTTP at http://{host}:{port}/mcp ({len(tokens.entries)} tokens)", file=sys.stderr)
        run_http(build_server(service, principal_from_bearer(tokens), reconnect), tokens, host, port)
