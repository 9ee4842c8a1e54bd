"""The module map's rules, read from the code (docs/architecture.md says why each holds):

- the staging stages are spelled only in the staging module;
- the sync steps are siblings: none imports another;
- Dagster code (defs/) writes no SQL and reads no JSON metadata key of the database;
- environment variable names are spelled only in settings.py (the sandbox excepted);
- content/, sync/, confluence/, db/, search/ and embeddings/ know nothing of Dagster;
- no product module is longer than the limit (the sandbox excepted).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "confluence_assets"
PRODUCT = sorted(p for p in PACKAGE.rglob("*.py") if "sandbox" not in p.relative_to(PACKAGE).parts)
MAX_LINES = 400
STEPS = ("changes", "convert_step", "chunk_step", "embed_step", "reconcile", "probe")


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _strings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module (docstrings included), with its line."""
    tree = ast.parse(path.read_text())
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_stage_names_live_in_the_staging_module_only():
    literal = re.compile(r"'(fetched|converted|chunked|failed)'|\bstage\s*(=|<>|!=)\s*'")
    offenders = [
        f"{_rel(path)}:{line}"
        for path in PRODUCT
        if _rel(path) != "sync/staging.py"
        for line, text in _strings(path)
        if literal.search(text) or text in ("fetched", "converted", "chunked")
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("step", STEPS)
def test_no_sync_step_imports_another(step):
    imported = _imports(PACKAGE / "sync" / f"{step}.py")
    others = {f"confluence_assets.sync.{other}" for other in STEPS if other != step}
    assert not imported & others, sorted(imported & others)


def test_dagster_code_writes_no_sql_and_reads_no_metadata_key():
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET|WHERE)\b|->>|metadata->", re.S)
    keys = ("deletion_check_strategy", "confluence_base_url", "last_sync_timestamp", "started_at")
    offenders = [
        f"{_rel(path)}:{line}: {text[:60]!r}"
        for path in sorted((PACKAGE / "defs").glob("*.py"))
        for line, text in _strings(path)
        if sql.search(text) or text in keys
    ]
    assert not offenders, offenders


def test_environment_variable_names_are_spelled_in_settings_only():
    name = re.compile(r"^(CONFLUENCE|OPENAI|EMBEDDING|DATABASE|DAGSTER|SANDBOX)_[A-Z0-9_]+$")
    offenders = [
        f"{_rel(path)}:{line}: {text}"
        for path in PRODUCT
        if _rel(path) != "settings.py"
        for line, text in _strings(path)
        if name.match(text)
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("layer", ["content", "sync", "confluence", "db", "search", "embeddings"])
def test_the_plain_layers_know_no_dagster(layer):
    offenders = [
        _rel(path)
        for path in sorted((PACKAGE / layer).rglob("*.py"))
        if any(m == "dagster" or m.startswith(("dagster.", "dagster_")) for m in _imports(path))
        or any(m.startswith("confluence_assets.defs") for m in _imports(path))
    ]
    assert not offenders, offenders


def test_no_product_module_is_longer_than_the_limit():
    long = {_rel(p): n for p in PRODUCT if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
