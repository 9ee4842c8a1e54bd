"""Who an MCP connection searches as: the bearer tokens of ``confluence-assets mcp --http`` and the principal
each one maps to.

The tokens file (``CONFLUENCE_MCP_TOKENS_FILE`` or ``--tokens-file``) has one token a line, then the
principal: a Confluence account id, the e-mail of a known Confluence user, ``@nobody`` (pages without read
restrictions only) or ``@service-account`` (every page, Confluence permissions not applied; logged). A token
may be written as ``sha256:<hex digest>`` so that the file need not hold it. Blank lines and ``#`` comments
are skipped::

    # token                                   principal
    4f9c0d0e6b0a4c4e9d3b1b7f2f1c8a90e5d7     712020:5c1a...       (an account id)
    sha256:9f86d081884c7d659a2feaa0c55ad015...   alice@example.com
    b0d8...                                    @nobody

A request is answered only when its ``Authorization: Bearer <token>`` is one of these: anything else
(no header, another scheme, an unknown token) is 401 before the MCP layer sees it. Tokens are compared
as SHA-256 digests with ``hmac.compare_digest`` against every entry (no early exit), and never logged:
messages about the file name its line numbers only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from confluence_assets.search.errors import SearchError
from confluence_assets.search.principal import NOBODY, Principal, resolve_principal

log = logging.getLogger(__name__)

NOBODY_SPEC = "@nobody"
SERVICE_ACCOUNT_SPEC = "@service-account"
MIN_TOKEN_LENGTH = 16
_HASHED = "sha256:"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class TokenFileError(ValueError):
    """A tokens file that cannot be used; the message names the file and line, never a token."""


@dataclass(frozen=True)
class TokenTable:
    """(SHA-256 digest of a token, its principal) pairs."""

    entries: tuple[tuple[bytes, Principal], ...]

    def principal_for(self, token: str | None) -> Principal | None:
        """The principal of ``token``, or None for an unknown (or no) token; the time taken does not
        depend on which entry matches, or on how much of a token is right."""
        digest = hashlib.sha256((token or "").encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for known, principal in self.entries:
            if hmac.compare_digest(known, digest) and token:
                found = principal
        return found


def parse_tokens(text: str, source: str) -> list[tuple[bytes, str]]:
    """(digest, principal spec) per line of a tokens file; TokenFileError names the first bad line."""
    parsed: list[tuple[bytes, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenFileError(f"{source} line {number}: expected '<token> <principal>' (two fields)")
        token, spec = parts
        if token.startswith(_HASHED):
            try:
                digest = bytes.fromhex(token[len(_HASHED) :])
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise TokenFileError(f"{source} line {number}: sha256: needs the 64 hex digits of the digest")
        elif len(token) < MIN_TOKEN_LENGTH:
            raise TokenFileError(f"{source} line {number}: a token needs at least {MIN_TOKEN_LENGTH} characters")
        else:
            digest = hashlib.sha256(token.encode("utf-8")).digest()
        if any(hmac.compare_digest(digest, seen) for seen, _ in parsed):
            raise TokenFileError(f"{source} line {number}: the same token is listed twice")
        parsed.append((digest, spec))
    if not parsed:
        raise TokenFileError(f"{source} lists no token: every request would be refused")
    return parsed


def load_tokens(conn: psycopg.Connection, path: Path) -> TokenTable:
    """The tokens of ``path`` with their principals resolved (e-mails looked up now, so a wrong one stops
    the server at start, naming its line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"cannot read the tokens file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TokenFileError(f"the tokens file {path} is not UTF-8 text") from None
    if path.stat().st_mode & 0o077:
        log.warning("the tokens file %s is readable by other users: chmod 600 it (or list sha256: digests)", path)
    entries = []
    for number, (digest, spec) in enumerate(parse_tokens(text, str(path)), 1):
        try:
            entries.append((digest, principal_from_spec(conn, spec)))
        except SearchError as exc:  # PrincipalError: an unknown e-mail, a malformed account id
            raise TokenFileError(f"{path}, token {number}: {exc}") from None
    kinds = sorted({p.kind for _, p in entries})
    log.info("MCP tokens: %d from %s (principals: %s)", len(entries), path, ", ".join(kinds))
    return TokenTable(tuple(entries))


def principal_from_spec(conn: psycopg.Connection, spec: str | None) -> Principal:
    """``@nobody``, ``@service-account`` (logged at WARNING), an account id or a known user's e-mail; None:
    nobody named, the fail-closed default of ``confluence-assets search``."""
    if spec is None or spec.strip() == NOBODY_SPEC:
        return NOBODY
    if spec.strip() == SERVICE_ACCOUNT_SPEC:
        return resolve_principal(conn, None, as_service_account=True)
    return resolve_principal(conn, spec)


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of the (one) ``Authorization: Bearer`` header of raw ASGI headers, or None."""
    values = [v.decode("latin-1") for k, v in headers if k.lower() == b"authorization"]
    return bearer_from_value(values[0]) if len(values) == 1 else None


def bearer_from_value(value: str | None) -> str | None:
    """The token of an ``Authorization`` value ``Bearer <token>``, or None."""
    scheme, _, token = (value or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def require_bearer(app: ASGIApp, tokens: TokenTable) -> ASGIApp:
    """``app`` behind the bearer check: an HTTP request without a known token gets 401 and a one-line JSON
    error, and never reaches ``app``. The principal rides along in ``scope["state"]``."""

    async def guarded(scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        principal = tokens.principal_for(bearer_token(scope.get("headers") or []))
        if principal is None:
            body = json.dumps({"error": "unauthorized: send Authorization: Bearer <token> with a configured token"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="confluence-assets"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body.encode()})
            return
        scope.setdefault("state", {})["confluence_principal"] = principal
        await app(scope, receive, send)

    return guarded


def hash_token(token: str) -> str:
    """The ``sha256:<hex>`` form of a token, for a tokens file that should not hold the token itself."""
    return _HASHED + hashlib.sha256(token.encode("utf-8")).hexdigest()
