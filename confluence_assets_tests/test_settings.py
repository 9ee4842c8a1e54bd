"""The one settings loader: defaults, one message per bad value, read when the definitions load (not at
import), and the code location validated by Dagster's own `dg check defs`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from confluence_assets import settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_an_empty_environment_gives_the_documented_defaults():
    loaded = settings.load({})
    assert loaded.embeddings.model == "text-embedding-3-small" and loaded.embeddings.dimensions == 1536
    assert loaded.automation.change_sensor_interval_seconds == 3600
    assert loaded.automation.space_sensor_interval_seconds == 3600
    assert loaded.automation.reconciliation_cron == "0 3 * * 0"
    assert loaded.automation.reconciliation_timezone == "UTC"
    assert loaded.automation.running_by_default is True
    assert loaded.automation.step_retry_delay_seconds == 30.0
    assert loaded.spaces.space_types == ("global",) and loaded.spaces.statuses == ("current",)
    assert loaded.spaces.deletion_strategy == "weekly_reconciliation"
    assert loaded.database.url is None and loaded.database.home == Path("~/.confluence-assets").expanduser().resolve()
    assert (loaded.sandbox.host, loaded.sandbox.confluence_port, loaded.sandbox.embeddings_port) == (
        "127.0.0.1",
        8090,
        8091,
    )
    assert loaded.present == frozenset()


def test_values_are_read_typed_and_the_set_names_are_known():
    loaded = settings.load(
        {
            "CONFLUENCE_URL": "https://x.atlassian.net/wiki",
            "CONFLUENCE_API_TOKEN": "ATATT-secret",
            "CONFLUENCE_SPACES": "ENG, ~alice ,OPS",
            "CONFLUENCE_SPACE_TYPES": "global,personal",
            "EMBEDDING_DIMENSIONS": "384",
            "CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS": "60",
            "CONFLUENCE_AUTOMATION_DEFAULT": "Stopped",
            "CONFLUENCE_STEP_RETRY_DELAY_SECONDS": "0.5",
            "CONFLUENCE_RECONCILIATION_CRON": "0  4 * * 1",
            "CONFLUENCE_EMAIL": "   ",  # blank counts as unset
        }
    )
    assert loaded.spaces.include_keys == ("ENG", "~alice", "OPS")
    assert loaded.spaces.space_types == ("global", "personal")
    assert loaded.embeddings.dimensions == 384
    assert loaded.automation.change_sensor_interval_seconds == 60
    assert loaded.automation.running_by_default is False
    assert loaded.automation.step_retry_delay_seconds == 0.5
    assert loaded.automation.reconciliation_cron == "0 4 * * 1"
    assert loaded.is_set("CONFLUENCE_API_TOKEN") and not loaded.is_set("CONFLUENCE_EMAIL")
    assert loaded.confluence.email is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("EMBEDDING_DIMENSIONS", "1000", "must be one of 384, 768, 1024, 1536, 3072"),
        ("EMBEDDING_DIMENSIONS", "many", "must be a whole number"),
        ("CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS", "0", "must be a whole number >= 1"),
        ("CONFLUENCE_SPACE_SENSOR_INTERVAL_SECONDS", "hourly", "must be a whole number >= 1"),
        ("CONFLUENCE_STEP_RETRY_DELAY_SECONDS", "-1", "must be a number >= 0"),
        ("CONFLUENCE_RECONCILIATION_CRON", "every sunday", "must be a cron expression of five fields"),
        ("CONFLUENCE_RECONCILIATION_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("CONFLUENCE_SITE_TIMEZONE", "Korea Standard Time", "unknown time zone"),
        ("CONFLUENCE_AUTOMATION_DEFAULT", "paused", "must be one of running, stopped"),
        ("CONFLUENCE_DELETION_STRATEGY", "never", "must be one of weekly_reconciliation, every_sync, on_demand"),
        ("CONFLUENCE_SPACE_TYPES", "global,team", "names unknown values ['team']"),
        ("CONFLUENCE_SPACE_STATUSES", "deleted", "names unknown values ['deleted']"),
        ("CONFLUENCE_SPACES", 'ENG" OR space != "X', "invalid Confluence space key"),
        ("SANDBOX_CONFLUENCE_PORT", "http", "must be a whole number"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name, value, says):
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({name: value})
    message = str(caught.value)
    assert message.startswith(name) and says in message and "\n" not in message, message


def test_every_bad_value_is_named_once():
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"EMBEDDING_DIMENSIONS": "7", "CONFLUENCE_RECONCILIATION_TIMEZONE": "Nowhere"})
    message = str(caught.value)
    assert message.count("EMBEDDING_DIMENSIONS") == 1 and message.count("CONFLUENCE_RECONCILIATION_TIMEZONE") == 1


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "EMBEDDING_"))}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, cwd=REPO_ROOT)


def test_settings_are_read_when_the_definitions_load_not_at_import():
    imports = "import confluence_assets.definitions, confluence_assets.defs.assets, confluence_assets.defs.sensors"
    bad = {"CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS": "soon"}
    assert _python(imports + "; print('imported')", **bad).stdout.strip() == "imported"
    load = "from confluence_assets.definitions import load_definitions\nload_definitions()"
    failed = _python(load, **bad)
    assert failed.returncode != 0
    assert "CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS must be a whole number >= 1, got 'soon'" in failed.stderr
    loaded = _python(
        load + "\nd = load_definitions()\nprint(d.get_sensor_def('confluence_change_sensor').minimum_interval_seconds)",
        CONFLUENCE_CHANGE_SENSOR_INTERVAL_SECONDS="90",
    )
    assert loaded.stdout.strip() == "90", loaded.stderr[-2000:]


def _dg_check_defs(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONFLUENCE_", "EMBEDDING_", "OPENAI_"))}
    environ.update(DAGSTER_HOME=str(tmp_path), VIRTUAL_ENV=str(Path(sys.executable).parents[1]), **env)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg = Path(sys.executable).with_name("dg")
    return subprocess.run(
        [str(dg), "check", "defs"], env=environ, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )


def test_dg_check_defs_passes_on_the_project(tmp_path):
    checked = _dg_check_defs(tmp_path)
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr


def test_dg_check_defs_names_a_bad_setting(tmp_path):
    checked = _dg_check_defs(tmp_path, EMBEDDING_DIMENSIONS="999")
    assert checked.returncode != 0
    assert "EMBEDDING_DIMENSIONS must be one of 384, 768, 1024, 1536, 3072" in checked.stdout + checked.stderr
