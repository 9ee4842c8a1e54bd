"""bench/soak.py at a small size: two minutes of edits, renames, moves, trashes, restores, restrictions and
faults against a deployed dev instance, then the database equals the sandbox, no run is stuck and no process
of the instance is left.

Marked slow (about 6 minutes; CI's budget is spent). Run with --run-slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
OPERATIONS = {"edit", "rename", "move", "trash", "restore", "restrict", "lift"}


@pytest.mark.slow
def test_a_short_soak_converges_to_the_sandbox_with_nothing_stuck_or_left(tmp_path):
    figures_path = tmp_path / "figures.json"
    command = [sys.executable, "soak.py", "--spaces", "2", "--pages", "8", "--minutes", "2", "--interval", "3"]
    command += ["--sensor-interval", "5", "--fault-every", "10", "--json", str(figures_path)]
    done = subprocess.run(command, cwd=BENCH, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    figures = json.loads(figures_path.read_text())

    assert figures["initial_load"]["runs"] == {"SUCCESS": 2}
    operations = figures["operations"]
    assert set(operations["done"]) == OPERATIONS and not operations["errors"]  # every kind, at least once
    assert sum(operations["done"].values()) >= 30  # about one every 3 s for 2 minutes
    assert operations["faults"].get("status 429", 0) >= 1 and operations["faults"].get("reset", 0) >= 1

    # The per-minute series: minutes 0, 1 and 2, operations growing, both processes measured.
    series = figures["series"]
    assert [s["minute"] for s in series] == [0, 1, 2]
    assert series[0]["operations"] < series[1]["operations"] < series[2]["operations"]
    assert all(s["daemon"] > 0 and s["webserver"] > 0 for s in series)
    assert sum(series[-1]["runs"].values()) > 3  # the sensor requested syncs of the changes

    # Trashes and moves are not versions: the sensor's syncs alone leave differences; reconciliation ends them.
    assert any(figures["mismatches_before_reconciliation"].values())
    assert figures["reconciliation_runs"] == {"SUCCESS": 2}
    assert figures["mismatches"] == {key: [] for key in figures["mismatches"]} and len(figures["mismatches"]) == 2
    assert figures["stuck"] == [] and figures["orphans"] == []
    assert all(failed["repaired"] for failed in figures["failed"])
    assert figures["checks"]["database equals sandbox"] and figures["checks"]["no orphan process"]
