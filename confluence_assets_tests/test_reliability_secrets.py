"""Issue 8, secrets: runs with known secret values (a Confluence API token, a Data Center PAT, an OpenAI key
and a database password), the root logger at DEBUG, resources built exactly as the code location builds
them (EnvVar), successful and failing runs; then every place a secret could surface is grepped: Python
logs, stdout/stderr, Dagster's event log, run config, job snapshots (what the UI shows as resource
config), asset metadata, failure messages, every file of the Dagster instance, and the output of
`confluence-assets doctor` and `db-url`."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
from dagster._serdes import serialize_value

from confluence_assets.db.urls import database_name
from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus
from confluence_assets_tests.pipeline_support import SYNC_ASSETS

API_TOKEN = "ATATT3x-SECRET-api-token-7f3a9c"
PAT = "PAT-SECRET-data-center-41d2e8"
OPENAI_KEY = "sk-SECRET-openai-key-90b1c4"
DB_PASSWORD = "DbPa55-SECRET-3e7f21"
EMAIL = "secret.keeper@example.com"


def _forms() -> dict[str, str]:
    """Each secret and the encodings under which it would still be a secret."""
    basic = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    return {
        "api token": API_TOKEN,
        "basic auth header": basic,
        "pat": PAT,
        "openai key": OPENAI_KEY,
        "database password": DB_PASSWORD,
        "database password (url-encoded)": DB_PASSWORD.replace("-", "%2D"),
    }


def _leaks(text: str | bytes, where: str) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    return [f"{name} in {where}" for name, value in _forms().items() if value.encode() in data]


def _secret_db_url(server_url: str, db_url: str) -> str:
    """The test database through a role with a password (the embedded server trusts its Unix socket, so
    the password travels through every code path without being needed)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS ca_secret_role")
        conn.execute(f"CREATE ROLE ca_secret_role LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'")
    socket_dir = psycopg.conninfo.conninfo_to_dict(server_url).get("host")
    return f"postgresql://ca_secret_role:{DB_PASSWORD}@/{database_name(db_url)}?host={socket_dir}"


def _run(instance, resources, key, *, raise_on_error=True):
    return dg.materialize(
        SYNC_ASSETS,
        partition_key=key,
        instance=instance,
        resources=resources,
        raise_on_error=raise_on_error,
        selection=[a.key for a in SYNC_ASSETS],
    )


def test_no_secret_reaches_logs_events_config_metadata_errors_or_cli_output(
    migrated_db_url, server_url, monkeypatch, caplog, capfd, tmp_path
):
    from confluence_assets import settings
    from confluence_assets.defs.resources import build_resources

    site = Site(timezone="Asia/Seoul")
    generate_corpus(site, seed=9, spaces=1, pages_per_space=12, large_pages=0, empty_pages=0)
    user = site.add_user("Secret Keeper", email=EMAIL, api_token=API_TOKEN, pat=PAT)
    key = next(iter(site.spaces))
    db_url = _secret_db_url(server_url, migrated_db_url)
    found: list[str] = []

    caplog.set_level(logging.DEBUG)  # a user who turns everything up
    logging.getLogger("atlassian").setLevel(logging.DEBUG)  # even the library that logs curl lines
    with (
        ConfluenceServer(site, user=user) as conf,
        EmbeddingsServer(api_key=OPENAI_KEY) as emb,
        dg.instance_for_test() as instance,
    ):
        env = {
            "CONFLUENCE_URL": conf.url,
            "CONFLUENCE_SITE_TIMEZONE": "Asia/Seoul",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": emb.url,
            "DATABASE_URL": db_url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance.add_dynamic_partitions("confluence_spaces", [key])
        results = []
        # Cloud credentials: a good run, then failures on both providers.
        monkeypatch.setenv("CONFLUENCE_EMAIL", EMAIL)
        monkeypatch.setenv("CONFLUENCE_API_TOKEN", API_TOKEN)
        results.append(_run(instance, build_resources(settings.load()), key))
        conf.faults.add("GET /wiki/rest/api/content/search", status=403, times=1)
        results.append(_run(instance, build_resources(settings.load()), key, raise_on_error=False))
        site.edit_page(site.live_pages(key)[1].id, body="<p>changed for the embedding failure</p>")
        emb.faults.add("POST /v1/embeddings", status=401, times=None)
        results.append(_run(instance, build_resources(settings.load()), key, raise_on_error=False))
        emb.faults.clear()
        # Data Center credentials: a good run and a rejected one.
        monkeypatch.delenv("CONFLUENCE_EMAIL")
        monkeypatch.delenv("CONFLUENCE_API_TOKEN")
        monkeypatch.setenv("CONFLUENCE_PAT", PAT)
        results.append(_run(instance, build_resources(settings.load()), key))
        conf.faults.add("GET /wiki/rest/api/content/search", status=401, times=1)
        results.append(_run(instance, build_resources(settings.load()), key, raise_on_error=False))
        assert [r.success for r in results] == [True, False, False, True, False]
        assert conf.stats["GET /wiki/rest/api/content/search"] >= 5 and emb.stats.requests >= 2

        # The CLI a user runs to check the set-up, with every secret in its environment, while the servers
        # answer: doctor authenticates against Confluence (once accepted, once refused with a 401).
        cli_env = {k: v for k, v in os.environ.items() if k not in ("CONFLUENCE_ASSETS_TEST_CRASH_AT",)}
        cli_env.update(CONFLUENCE_EMAIL=EMAIL, CONFLUENCE_API_TOKEN=API_TOKEN, CONFLUENCE_PAT=PAT)
        for args in (["doctor"], ["doctor", "refused"], ["db-url"], ["db-url", "--dagster"]):
            if args == ["doctor", "refused"]:
                conf.faults.add("GET /wiki/rest/api/space", status=401, times=1)
                args = ["doctor"]
                refused = True
            else:
                refused = False
            proc = subprocess.run(  # noqa: S603
                [sys.executable, "-m", "confluence_assets.cli", *args],
                env=cli_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            found += _leaks(proc.stdout + proc.stderr, f"confluence-assets {' '.join(args)}")
            if args == ["db-url"]:
                assert "ca_secret_role:***@" in proc.stdout, proc.stdout + proc.stderr
            if args == ["doctor"]:  # it really looked: the database, Confluence, the embeddings settings
                assert "OK   database: DATABASE_URL" in proc.stdout and "API key set" in proc.stdout, proc.stdout
                if refused:
                    assert "FAIL confluence reachable:" in proc.stdout and "CONFLUENCE_PAT" in proc.stdout, proc.stdout
                else:
                    assert "OK   confluence reachable: authenticated" in proc.stdout, proc.stdout
        assert conf.stats["GET /wiki/rest/api/space"] >= 2

        for result in results:
            run = instance.get_run_by_id(result.run_id)
            found += _leaks(serialize_value(run.run_config), f"run config {result.run_id}")
            found += _leaks(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)), "job snapshot")
            found += _leaks(
                serialize_value(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)), "plan snapshot"
            )
            events = instance.all_logs(result.run_id)
            assert len(events) > 20
            found += _leaks(serialize_value(events), f"event log {result.run_id}")
            for event in result.all_events:
                found += _leaks(str(event.message), "event message")
        root = Path(instance.root_directory)
        for path in root.rglob("*"):
            if path.is_file():
                found += _leaks(path.read_bytes(), f"instance file {path.relative_to(root)}")

    out, err = capfd.readouterr()
    found += _leaks(out, "stdout") + _leaks(err, "stderr") + _leaks(caplog.text, "Python logging")
    assert "curl" in caplog.text  # the library did log at DEBUG: and the lines carry no credentials

    assert not found, found
