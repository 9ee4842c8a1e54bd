"""The ``confluence-assets`` command.

argparse (standard library) rather than click/typer: the commands are few and flat, and it keeps the
dependency list to the packages the product is built on. Each command prints one clear line on failure
(no traceback) and exits non-zero; a setting with a bad value (:class:`~confluence_assets.settings.SettingsError`)
is such a failure too.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import psycopg

from confluence_assets import __version__, settings
from confluence_assets.confluence.keys import validate_space_key
from confluence_assets.sync.spaces import restore_space

log = logging.getLogger("confluence_assets")


class CommandError(Exception):
    """A failure the user can fix; printed as one line, exit status 2."""


def _cmd_migrate(args: argparse.Namespace) -> int:
    from confluence_assets.db import migrations
    from confluence_assets.db.connection import resolve_database

    target = resolve_database(args.database_url)
    try:
        applied = migrations.migrate(target.url)
    except migrations.MigrationError as exc:
        raise CommandError(str(exc)) from None
    for m in applied:
        print(f"applied {m.version}/{m.name} ({m.checksum})")
    print(f"database {target.masked} is up to date ({len(applied)} applied now)")
    home = settings.env(settings.DAGSTER_HOME)
    if home and Path(home, "dagster.yaml").is_file():  # a deployment: create its pools before any run
        from confluence_assets.defs.pools import prepare_pools_in

        for pool, limit in prepare_pools_in(home).items():
            print(f"Dagster pool {pool}: {limit} slots ({settings.DAGSTER_HOME}={home})")
    return 0


def _cmd_restore_space(args: argparse.Namespace) -> int:
    print(restore_space(args.database_url, args.space_key))
    return 0


def _cmd_db_url(args: argparse.Namespace) -> int:
    from confluence_assets.db.connection import resolve_dagster_storage_url, resolve_database
    from confluence_assets.db.urls import mask_url

    if args.dagster:
        print(mask_url(resolve_dagster_storage_url(args.database_url)))
    else:
        print(resolve_database(args.database_url).masked)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from confluence_assets.doctor import run_checks

    checks = run_checks(args.database_url, online=not args.offline)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(f"{len(checks) - failed} OK, {failed} FAIL")
    return 1 if failed else 0


def _cmd_db(args: argparse.Namespace) -> int:
    from confluence_assets.db import embedded

    if args.action == "start":
        server = embedded.ensure_embedded_server()
        print(f"embedded PostgreSQL running: {server.pgdata}")
    elif args.action == "stop":
        stopped = embedded.stop_embedded_server()
        print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")
    else:
        running = embedded.is_running()
        print(f"embedded PostgreSQL {'running' if running else 'stopped'}: {embedded.pgdata_dir()}")
    return 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfoNotFoundError

    from confluence_assets.sandbox.demo import serve
    from confluence_assets.sandbox.demo_arguments import apply_setting_defaults

    apply_setting_defaults(args)
    try:
        return serve(args, out=lambda line: print(line, flush=True))
    except ZoneInfoNotFoundError:
        raise CommandError(f"unknown time zone {args.timezone!r} (use an IANA name such as Asia/Seoul)") from None
    except ValueError as exc:  # a malformed fault rule
        raise CommandError(str(exc)) from None


def _cmd_search(args: argparse.Namespace) -> int:
    import json

    from confluence_assets.search import (
        InvalidFilterError,
        SearchArgumentError,
        SearchError,
        SearchFilters,
        SearchService,
        parse_since,
    )
    from confluence_assets.search.hybrid import excerpt

    try:
        filters = SearchFilters(
            spaces=tuple(args.space or ()),
            labels=tuple(args.label or ()),
            jira_keys=tuple(args.jira or ()),
            mentions=tuple(args.mentions or ()),
            authors=tuple(args.author or ()),
            under_page_id=args.under,
            modified_since=parse_since(args.since) if args.since else None,
        ).validated()
        if args.as_user is not None and args.as_service_account:
            raise CommandError("--as-user and --as-service-account exclude each other: search as one of them")
        with SearchService.from_env(args.database_url, need_embedder=args.mode != "keyword") as service:
            results = service.search(
                args.query,
                filters,
                limit=args.limit,
                mode=args.mode,
                as_user=args.as_user,
                as_service_account=args.as_service_account,
            )
    except (SearchError, InvalidFilterError, SearchArgumentError) as exc:
        raise CommandError(str(exc)) from None
    except (psycopg.errors.UndefinedFunction, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedObject):
        raise CommandError("the database has no search functions yet: run confluence-assets migrate") from None
    except psycopg.Error as exc:
        raise CommandError(f"search failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
    if args.json:
        document = {
            "principal": results.principal.to_dict(),
            "withheld": results.withheld,
            "results": [r.to_dict() for r in results],
        }
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    if results.withheld:
        print(f"{results.withheld} matches withheld: restricted pages need --as-user", file=sys.stderr)
    if not results:
        print("no results")
    for n, r in enumerate(results, 1):
        similarity = f", similarity {r.similarity:.3f}" if r.similarity is not None else ""
        print(f"{n}. {r.page_title}  [{r.space_key}]  score {r.score:.4f} ({r.match_type}{similarity})")
        print(f"   {' > '.join(r.breadcrumb)}")
        if r.section_title and r.section_title != r.page_title:
            print(f"   section: {r.section_title}")
        print(f"   {r.url or ''}")
        if args.full:
            print(textwrap.indent(r.content.rstrip(), "   "))
        else:
            print(f"   {excerpt(r.content, args.query)}")
        print()
    return 0


def _cmd_mcp(args: argparse.Namespace) -> int:
    try:
        from confluence_assets import mcp_server
    except ImportError as exc:  # the optional extra is missing
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        raise CommandError("the MCP server needs the mcp extra: pip install 'confluence-assets[mcp]'") from None
    try:
        mcp_server.serve(
            args.database_url,
            http=args.http,
            as_user=args.as_user,
            as_service_account=args.as_service_account,
            tokens_file=args.tokens_file,
        )
    except mcp_server.SetupError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _cmd_embeddings_server(args: argparse.Namespace) -> int:
    from confluence_assets.embeddings import local_model

    try:
        return local_model.serve(args, settings.load().database.home / "models", out=lambda x: print(x, flush=True))
    except local_model.LocalModelError as exc:
        raise CommandError(str(exc)) from None


def _cmd_dev(args: argparse.Namespace) -> int:
    from confluence_assets import dev
    from confluence_assets.embeddings.local_model import LocalModelError

    if args.local_embeddings and not args.sandbox:
        raise CommandError("--local-embeddings serves the sandbox demo: use it with --sandbox (./run dev does)")
    try:
        return dev.run(args, out=lambda line: print(line, flush=True))
    except LocalModelError as exc:  # the extra is missing
        raise CommandError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="confluence-assets",
        description="Keep a Confluence site searchable: a Dagster pipeline into PostgreSQL + pgvector.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        p.add_argument(
            "--database-url",
            default=None,
            help=f"PostgreSQL URL (default: ${settings.DATABASE_URL}, else the embedded server)",
        )
        return p

    add("migrate", _cmd_migrate, "apply pending SQL migrations")
    p = add("db-url", _cmd_db_url, "print the database URL in use (password masked)")
    p.add_argument("--dagster", action="store_true", help="print Dagster's storage URL instead")
    p = add("restore-space", _cmd_restore_space, "sync again a space whose source was deleted in Archon")
    p.add_argument("space_key", type=validate_space_key, metavar="KEY", help="its Confluence space key")
    p = add("doctor", _cmd_doctor, "check database, pgvector, migrations, settings and that Confluence answers")
    p.add_argument("--offline", action="store_true", help="check settings only; make no request to Confluence")
    help_ = "run the Dagster UI and daemon on the embedded database (--sandbox: against the sandbox servers)"
    p = sub.add_parser("dev", help=help_, description=help_)
    p.set_defaults(handler=_cmd_dev)
    from confluence_assets.dev import add_arguments as add_dev_arguments

    add_dev_arguments(p)
    p = add("db", _cmd_db, "start, stop or inspect the embedded PostgreSQL")
    p.add_argument("action", choices=["start", "stop", "status"])
    help_ = "serve a Confluence sandbox and an OpenAI-compatible embeddings sandbox (offline demo and tests)"
    p = sub.add_parser("sandbox", help=help_, description=help_)
    p.set_defaults(handler=_cmd_sandbox)
    from confluence_assets.sandbox.demo_arguments import add_arguments as add_sandbox_arguments

    add_sandbox_arguments(p)

    p = add("search", _cmd_search, "search the synced Confluence pages (hybrid: meaning + keywords)")
    p.add_argument("query", help='what to look for; keywords accept "phrases", or, and -exclusions')
    p.add_argument("--space", action="append", metavar="KEY", help="only this space (repeatable: any of them)")
    p.add_argument("--label", action="append", metavar="LABEL", help="pages with this label (repeatable: all)")
    p.add_argument("--jira", action="append", metavar="KEY-1", help="pages linking this Jira issue (repeatable: all)")
    p.add_argument(
        "--mentions", action="append", metavar="ACCOUNT_ID", help="pages mentioning this user (repeatable: all)"
    )
    p.add_argument("--author", action="append", metavar="ACCOUNT_ID", help="pages created by this user (repeatable)")
    p.add_argument("--under", metavar="PAGE_ID", help="this page and the pages below it")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="pages modified on or after this date (UTC)")
    p.add_argument("--limit", type=int, default=10, metavar="N", help="number of results (default 10)")
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid", help="default: hybrid")
    p.add_argument("--full", action="store_true", help="print each chunk's whole text, not an excerpt")
    p.add_argument(
        "--as-user",
        metavar="ACCOUNT_ID|EMAIL",
        help="search as this Confluence user: only what they may open in Confluence (default: nobody named, "
        "i.e. pages without read restrictions only)",
    )
    p.add_argument(
        "--as-service-account",
        action="store_true",
        help="search everything the sync stored, Confluence permissions not applied (logged; administrators)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print {"principal", "withheld", "results": [...]} as JSON (for tools)',
    )

    help_ = "serve a real embedding model (all-MiniLM-L6-v2, CPU, offline) at an OpenAI-compatible /v1/embeddings"
    p = sub.add_parser("embeddings-server", help=help_, description=help_ + " (needs the local-embeddings extra)")
    p.set_defaults(handler=_cmd_embeddings_server)
    from confluence_assets.embeddings.local_model import add_arguments as add_embeddings_server_arguments

    add_embeddings_server_arguments(p)

    help_ = "serve the synced pages to agents over MCP (stdio; --http HOST:PORT for streamable HTTP)"
    p = add("mcp", _cmd_mcp, help_)
    p.add_argument("--http", metavar="HOST:PORT", help="serve streamable HTTP at http://HOST:PORT/mcp (bearer tokens)")
    p.add_argument(
        "--as-user",
        metavar="ACCOUNT_ID|EMAIL",
        help=f"stdio: search as this Confluence user (default ${settings.CONFLUENCE_MCP_AS_USER}, else nobody "
        "named: pages without read restrictions only)",
    )
    p.add_argument(
        "--as-service-account",
        action="store_true",
        help="stdio: every page the sync stored, Confluence permissions not applied (logged; administrators)",
    )
    p.add_argument(
        "--tokens-file",
        metavar="PATH",
        help=f"--http: '<token> <principal>' lines (default ${settings.CONFLUENCE_MCP_TOKENS_FILE})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return args.handler(args)
    except (CommandError, settings.SettingsError) as exc:  # SettingsError: one line naming each bad variable
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, psycopg.OperationalError) as exc:  # unreachable database, missing files
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: {first_line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
