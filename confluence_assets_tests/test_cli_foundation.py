"""The console script as a user runs it: a real subprocess, a real database, no tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from confluence_assets.db import migrations
from confluence_assets.db.urls import mask_url, sqlalchemy_psycopg2_url

CLI = str(Path(sys.executable).parent / "confluence-assets")
SECRETS = {
    "CONFLUENCE_API_TOKEN": "ATATT-sekrit-token-0042",
    "OPENAI_API_KEY": "sk-sekrit-openai-0042",
}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "OPENAI_", "EMBEDDING_"))}
    full_env["CONFLUENCE_ASSETS_HOME"] = os.environ["CONFLUENCE_ASSETS_HOME"]
    full_env.update(env or {})
    return subprocess.run([CLI, *args], env=full_env, capture_output=True, text=True, timeout=timeout)


def all_settings(db_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "CONFLUENCE_URL": "https://example.atlassian.net/wiki",
        "CONFLUENCE_EMAIL": "bot@example.com",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        **SECRETS,
    }


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://alice:s3cr3t@db.example:5432/kb", "postgresql://alice:***@db.example:5432/kb"),
        ("postgresql://alice@db.example/kb", "postgresql://alice@db.example/kb"),
        ("postgresql:///kb?host=/tmp/x&password=s3cr3t", "postgresql:///kb?host=/tmp/x&password=***"),
        ("host=db user=alice password='s3 cr3t' dbname=kb", "host=db user=alice password=*** dbname=kb"),
        ("host=db password=s3cr3t", "host=db password=***"),
    ],
)
def test_mask_url_hides_every_password_form(url, masked):
    assert mask_url(url) == masked
    assert "cr3t" not in mask_url(url)


def test_dagster_storage_url_names_psycopg2():
    assert sqlalchemy_psycopg2_url("postgresql://u:@/dagster?host=/s") == "postgresql+psycopg2://u:@/dagster?host=/s"
    assert sqlalchemy_psycopg2_url("postgres://u@h/d").startswith("postgresql+psycopg2://")


def test_db_url_masks_the_password_of_database_url():
    result = run_cli("db-url", env={"DATABASE_URL": "postgresql://alice:s3cr3t-pw@db.example:5432/kb"})
    assert result.returncode == 0
    assert result.stdout.strip() == "postgresql://alice:***@db.example:5432/kb"
    assert "s3cr3t" not in result.stdout + result.stderr


def test_db_url_without_database_url_is_the_embedded_server(embedded_server):
    result = run_cli("db-url")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == embedded_server.app_url
    dagster = run_cli("db-url", "--dagster")
    assert dagster.stdout.strip().startswith("postgresql+psycopg2://postgres:@/dagster?host=")


def test_migrate_command_applies_then_reports_up_to_date(fresh_db_url):
    first = run_cli("migrate", env={"DATABASE_URL": fresh_db_url})
    assert first.returncode == 0, first.stderr
    assert "applied 0.1.0/010_add_confluence_pages" in first.stdout
    second = run_cli("migrate", env={"DATABASE_URL": fresh_db_url})
    assert second.returncode == 0
    assert "is up to date (0 applied now)" in second.stdout


def test_migrate_refuses_an_edited_migration_in_one_line(fresh_db_url, tmp_path):
    sql_copy = tmp_path / "sql"
    shutil.copytree(migrations.sql_dir(), sql_copy)
    env = {"DATABASE_URL": fresh_db_url, "CONFLUENCE_ASSETS_SQL_DIR": str(sql_copy)}
    assert run_cli("migrate", env=env).returncode == 0
    target = sql_copy / "0.1.0" / "000_archon_base_tables.sql"
    target.write_text(target.read_text().replace("HNSW", "hnsw"))
    result = run_cli("migrate", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: applied migrations were edited afterwards")
    assert "Traceback" not in result.stderr


def test_doctor_all_ok_on_a_migrated_database_and_prints_no_secret(migrated_db_url):
    result = run_cli("doctor", "--offline", env=all_settings(migrated_db_url))
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["OK"] * (len(lines) - 1)
    assert {"database:", "pgvector:", "migrations:", "confluence:", "embeddings:"} <= {
        line.split()[1] for line in lines[:-1]
    }
    for secret in SECRETS.values():
        assert secret not in result.stdout + result.stderr


def test_doctor_names_what_is_missing_with_a_fix(fresh_db_url):
    result = run_cli("doctor", env={"DATABASE_URL": fresh_db_url, "EMBEDDING_DIMENSIONS": "999"})
    assert result.returncode == 1
    out = result.stdout
    assert "FAIL pgvector: available but not created\n     fix: run: confluence-assets migrate" in out
    assert "FAIL migrations:" in out and "pending" in out
    assert "FAIL confluence: CONFLUENCE_URL is not set" in out
    assert "FAIL embeddings: OPENAI_API_KEY is not set" in out
    assert "FAIL embedding dimensions" in out and "use one of 384, 768, 1024, 1536, 3072" in out


def test_doctor_on_unreachable_database_is_one_line_with_a_hint():
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/kb"
    result = run_cli("doctor", env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "FAIL database: DATABASE_URL postgresql://alice:***@127.0.0.1:1/kb unreachable" in result.stdout
    assert "fix: check host, port, user and password" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "s3cr3t" not in result.stdout + result.stderr


def test_doctor_accepts_a_data_center_token_instead_of_email(migrated_db_url):
    env = all_settings(migrated_db_url)
    del env["CONFLUENCE_EMAIL"], env["CONFLUENCE_API_TOKEN"]
    env["CONFLUENCE_PAT"] = "dc-sekrit-pat-0042"
    env["CONFLUENCE_URL"] = "https://confluence.example.com"
    result = run_cli("doctor", "--offline", env=env)
    assert (
        "OK   confluence: https://confluence.example.com with a personal access token (Bearer): Data Center"
        in result.stdout
    )
    assert "dc-sekrit-pat-0042" not in result.stdout
    # Cloud takes no personal access token: said before any request is made
    env["CONFLUENCE_URL"] = "https://example.atlassian.net/wiki"
    result = run_cli("doctor", "--offline", env=env)
    assert "FAIL confluence: https://example.atlassian.net/wiki with a personal access token" in result.stdout
    assert "Cloud does not take a personal access token" in result.stdout
    assert "dc-sekrit-pat-0042" not in result.stdout


def test_doctor_without_database_url_checks_the_embedded_server(embedded_server):
    result = run_cli("doctor", "--offline", env={"CONFLUENCE_URL": "https://example.atlassian.net/wiki", **SECRETS})
    out = result.stdout
    assert "OK   database: embedded postgresql://" in out and "(PostgreSQL 1" in out, out
    assert "OK   pgvector: extension vector 0." in out, out  # created when the embedded server starts
    assert "Traceback" not in out + result.stderr
