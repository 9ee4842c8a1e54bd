"""bench/scale_run.py at a small size: the scale run's path (a deployed dev instance, one backfill of every
space, a no-change and an edit round of the change sensor, search) does what its figures claim.

Marked slow (about 2 minutes; CI's budget is spent): `test_dev_end_to_end.py` covers the same deployed path
(a backfill through the queue, the sensor's re-sync, a clean stop) in CI. Run with --run-slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
def test_scale_run_syncs_every_space_and_resyncs_only_the_edited_ones(tmp_path):
    figures_path = tmp_path / "figures.json"
    command = [sys.executable, "scale_run.py", "--spaces", "3", "--pages", "6", "--queries", "5"]
    command += ["--sensor-interval", "5", "--edit-share", "0.2", "--json", str(figures_path)]
    done = subprocess.run(command, cwd=BENCH, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())

    load = figures["initial_load"]
    assert figures["partitions"] == 3
    assert load["runs"] == {"SUCCESS": 3}  # one run per space from one backfill
    assert 1 <= load["most_running"] <= 4  # the queue's limit
    assert load["pages"] >= 3 * 5 and load["chunks"] >= load["pages"]
    assert load["embedding_inputs"] == load["chunks"] and load["truncated_inputs"] == 0

    # Nothing changed: one CQL probe per space, no run, nothing embedded.
    quiet = figures["no_change_round"]
    assert quiet["runs_requested"] == 0
    assert quiet["confluence_requests"] == 3 and quiet["embedding_requests"] == 0

    # The edits: re-syncs of exactly the edited spaces, every edit live, only the edited pages re-embedded.
    edit = figures["edit_round"]
    assert edit["pages_edited"] >= 3 and edit["edits_live"] == edit["pages_edited"]
    assert edit["run_partitions"] == edit["edited_spaces"] and edit["runs"] == {"SUCCESS": len(edit["edited_spaces"])}
    assert 0 < edit["embedding_inputs"] < load["embedding_inputs"]

    assert {(row["viewer"], row["filter"]) for row in figures["search"]} >= {("service account", "unfiltered")}
    assert all(row["with_results"] == row["queries"] == 5 for row in figures["search"])
    assert figures["peak_rss_mb"]["run worker"] > 0
