"""The soak: a deployed instance kept busy for ``--minutes`` by a site that never stops changing; then the
database must equal the sandbox row for row, no run be stuck, no process be left and memory be flat.

    .venv/bin/python bench/soak.py [--spaces 4] [--pages 100] [--minutes 60] [--interval 2]
        [--sensor-interval 30] [--fault-every 50] [--seed 7] [--json PATH]

The sandbox is served from a child process (scale_run.py's Sandbox), which also makes the changes, so they
are not the pipeline's requests: every ``--interval`` s one operation from a seeded RNG on a random page of
a random space: edit, rename, move (never under its own subtree), trash (at most a tenth of a space's pages
at once: the final reconciliation stays under the mass-deletion guard), restore, restrict (read: the
service account and a reader) and lift. Every ``--fault-every`` operations, three 429s (Retry-After 1 s)
or two connection resets for whichever Confluence requests come next.

The real `confluence-assets dev` runs against it: the spaces job, one backfill of every space, then the
change sensor (``--sensor-interval``) through the soak, one line a minute (operations, runs by status, the
daemon's and webserver's RSS). Then the changes and faults stop and the sensor runs until a tick after the
last change and the last run requests nothing. Its syncs follow CQL's lastModified and never see a trash,
restore, move or restriction (no new version); under the default deletion strategy
(weekly_reconciliation) confluence_reconciliation_job converges those, so the soak launches it for every
space, as the weekly schedule would. The database is compared with the sandbox
(pipeline_support.assert_matches_site, and every live page's read restriction) before and after it.

Checks (exit status 1 if one fails): the database equals the sandbox; no run stuck; every failed run
repaired by a later success of its partition; no process of the instance left 30 s after it stopped; the
daemon's and webserver's memory flat: the mean of the last 3 minute samples at most 1.25x the mean of
samples 3-5 (judged from 6 samples on).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path

import psutil
import psycopg
from dev_instance import dev_instance, wait_for
from scale_run import (
    FINISHED,
    Dagster,
    MemorySampler,
    Sandbox,
    _partition,
    _wait_for_runs,
    backfill_every_space,
    instance_environment,
    space_partitions,
)

from confluence_assets import settings

OPERATIONS = ("edit", "rename", "move", "trash", "restore", "restrict", "lift")
IN_FLIGHT = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
TRASHED_SHARE = 0.1  # of a space's pages; the mass-deletion guard holds back more than 20 %
FLAT_RATIO = 1.25


# --- the sandbox child: the site, its servers and its changes -----------------------------------------


class Mutator(threading.Thread):
    """One operation every ``interval`` s on the site (and a fault burst every ``fault_every``)."""

    def __init__(self, site, conf, seed: int, interval: float, fault_every: int) -> None:
        super().__init__(daemon=True)
        self.site, self.conf, self.interval, self.fault_every = site, conf, interval, fault_every
        self.rng = random.Random(seed)
        self.reader = site.add_user("Soak Reader", email="soak.reader@example.com").account_id
        self.done: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()  # the site said no (a restored title taken meanwhile)
        self.errors: list[str] = []
        self.faults: list = []  # the rules added, for their ``applied`` counts
        self.last_change_at = time.time()
        self.halted = threading.Event()

    def run(self) -> None:
        while not self.halted.wait(self.interval):
            self.step()

    def candidates(self, key: str) -> dict[str, list]:
        site = self.site
        pages = [p for p in site.iter_pages(key) if p.kind == "page"]
        live = [p for p in pages if p.status == "current"]
        trashed = [p for p in pages if p.status == "trashed"]
        movable = [p for p in live if p.parent_id is not None]  # the homepage stays the root
        return {
            "edit": live,
            "rename": live,
            "move": movable,
            "trash": movable if len(trashed) < max(1, TRASHED_SHARE * len(pages)) else [],
            "restore": trashed,
            "restrict": [p for p in live if "read" not in p.restrictions],
            "lift": [p for p in live if "read" in p.restrictions],
        }

    def step(self) -> None:
        from confluence_assets.sandbox.site import SiteError

        site, rng = self.site, self.rng
        key = rng.choice(sorted(site.spaces))
        with site.lock:
            candidates = self.candidates(key)
            operation = rng.choice([op for op in OPERATIONS if candidates[op]])
            page = rng.choice(candidates[operation])
            number = self.done.total() + self.refused.total() + 1
            try:
                if operation == "edit":
                    site.edit_page(page.id, body=page.body + f"<p>Soak edit {number}.</p>")
                elif operation == "rename":
                    site.rename_page(page.id, f"{page.title.split(' (soak ')[0]} (soak {number})")
                elif operation == "move":
                    subtree = {page.id} | {p.id for p in candidates["edit"] if page.id in site.ancestor_ids(p.id)}
                    targets = [p for p in candidates["edit"] if p.id not in subtree and p.id != page.parent_id]
                    if not targets:
                        raise SiteError("nowhere to move it")
                    site.move_page(page.id, rng.choice(targets).id)
                elif operation == "trash":
                    site.trash_page(page.id)
                elif operation == "restore":
                    site.restore_page(page.id)
                elif operation == "restrict":
                    site.restrict_page(page.id, [site.default_user.account_id, self.reader])
                else:
                    site.unrestrict_page(page.id, "read")
                self.done[operation] += 1
            except SiteError:
                self.refused[operation] += 1
            except Exception as exc:  # a bug of the soak or the site: reported, and the soak goes on
                self.errors.append(f"{operation} {page.id}: {exc!r}")
            self.last_change_at = time.time()
        if number % self.fault_every == 0:
            burst = (number // self.fault_every) % 2
            options = {"status": 429, "retry_after": 1, "times": 3} if burst else {"reset": True, "times": 2}
            self.faults.append(self.conf.faults.add("GET *", **options))

    def halt(self) -> dict:
        self.halted.set()
        self.join(timeout=30)
        self.conf.faults.clear()
        return self.counts()

    def counts(self) -> dict:
        faults = {kind: sum(r.applied for r in self.faults if r.kind == kind) for kind in ("status 429", "reset")}
        done, refused, errors = dict(self.done), dict(self.refused), self.errors[:10]
        return {"done": done, "refused": refused, "errors": errors, "faults": faults, "at": self.last_change_at}


def _restriction_mismatches(site, db_url: str, key: str) -> list[str]:
    """Every live page's stored read restriction against the site's own (users, groups; status ok)."""
    expected = {}
    for snap in site.live_pages(key):
        read = site.page(snap.id).restrictions.get("read")
        expected[snap.id] = ("ok", sorted(read.users) if read else [], sorted(read.groups) if read else [])
    with psycopg.connect(db_url) as conn:
        stored = {
            pid: (status, sorted(users), sorted(groups))
            for pid, status, users, groups in conn.execute(
                """SELECT p.page_id, r.status, r.read_account_ids, r.read_group_ids
                   FROM confluence_pages p JOIN confluence_page_restrictions r ON r.page_id = p.page_id
                   WHERE p.space_key = %s AND NOT p.is_deleted""",
                (key,),
            )
        }
    wrong = [pid for pid, want in expected.items() if stored.get(pid) != want]
    return [f"restriction of {pid}: stored {stored.get(pid)}, site {expected[pid]}" for pid in wrong]


def _compare(site, db_url: str) -> dict[str, list[str]]:
    """Space key -> mismatches between the database and the site (none: equal)."""
    from confluence_assets_tests.pipeline_support import assert_matches_site

    mismatches = {}
    for key in sorted(site.spaces):
        found = []
        try:
            assert_matches_site(site, db_url, key)
        except AssertionError as exc:
            found.append(f"pages: {exc}"[:400])
        mismatches[key] = found + _restriction_mismatches(site, db_url, key)
    return mismatches


def _serve(spaces: int, pages: int, seed: int, conn, *, interval: float, fault_every: int) -> None:
    from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus

    site = Site(timezone="Asia/Seoul")
    generate_corpus(site, seed=seed, spaces=spaces, pages_per_space=pages)
    with ConfluenceServer(site) as conf, EmbeddingsServer() as emb:
        mutator = Mutator(site, conf, seed, interval, fault_every)
        conn.send({"conf": (conf.url, conf.email, conf.api_token), "emb": (emb.url, emb.api_key)})
        answers = {
            "start": lambda _: mutator.start(),
            "counts": lambda _: mutator.counts(),
            "halt": lambda _: mutator.halt(),
        }
        answers["compare"] = partial(_compare, site)
        while (message := conn.recv())[0] in answers:  # anything else ("stop"): the servers close
            conn.send(answers[message[0]](message[1]))


class SoakSandbox(Sandbox):
    def __init__(self, args: argparse.Namespace) -> None:
        serve = partial(_serve, interval=args.interval, fault_every=args.fault_every)
        super().__init__(args.spaces, args.pages, args.seed, serve=serve)


# --- the instance -------------------------------------------------------------------------------------


class MinuteSampler(MemorySampler):
    """MemorySampler's peaks, and the RSS of the daemon and the webserver right now."""

    def current_mb(self) -> dict[str, float]:
        rss: Counter[str] = Counter()
        for proc in self._processes():
            try:
                kind = self.kind_of(proc)
                rss[kind] += proc.memory_info().rss
            except psutil.Error:
                continue
        return {kind: round(rss[kind] / 2**20, 1) for kind in ("daemon", "webserver")}


def _instance_processes(home: Path | str) -> list[str]:
    """Processes carrying ``home`` as CONFLUENCE_ASSETS_HOME or in their command line."""
    found = []
    for proc in psutil.process_iter(["pid", "environ", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or [])
        if (proc.info["environ"] or {}).get(settings.CONFLUENCE_ASSETS_HOME) == str(home) or str(home) in command:
            found.append(f"{proc.info['pid']} {command[:120]}")
    return found


def _orphans(home: Path, grace: float = 30) -> list[str]:
    deadline = time.monotonic() + grace
    while (left := _instance_processes(home)) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def _settle(dagster: Dagster, last_change_at: float, timeout: float) -> float:
    """Until a tick after the last change and the last run requests nothing; seconds since the last change."""
    deadline = time.monotonic() + timeout

    def every_run_finished() -> list[dict] | None:
        runs = dagster.runs()
        return runs if all(r["status"] in FINISHED for r in runs) else None

    def tick_after(moment: float) -> dict | None:
        return next((t for t in dagster.ticks() if t["timestamp"] > moment and t["endTimestamp"]), None)

    while True:
        runs = wait_for(every_run_finished, deadline - time.monotonic(), "every run to finish", 5)
        after = max([last_change_at] + [r["endTime"] for r in runs if r["endTime"]])
        tick = wait_for(partial(tick_after, after), deadline - time.monotonic(), "a tick after the last change")
        if tick["status"] in ("SUCCESS", "SKIPPED") and not tick["runIds"]:
            return time.time() - last_change_at


def _soak(args: argparse.Namespace, dagster: Dagster, db_url: str, sandbox: SoakSandbox, sampler) -> dict:
    figures: dict = {"arguments": {k: v for k, v in vars(args).items() if k != "json"}}
    partition_set, keys = space_partitions(dagster)
    runs, _, began = backfill_every_space(dagster, partition_set, keys, 3600)
    statuses = dict(Counter(r["status"] for r in runs))
    load = figures["initial_load"] = {"seconds": round(time.time() - began), "runs": statuses}
    print(f"initial load (one backfill): {len(keys)} spaces in {load['seconds']} s, runs {load['runs']}", flush=True)

    sandbox.ask("start")
    dagster.start_sensor()
    started, series = time.monotonic(), []
    for minute in range(args.minutes + 1):
        time.sleep(max(0.0, started + 60 * minute - time.monotonic()))
        counts = sandbox.ask("counts")
        states = dict(sorted(Counter(r["status"] for r in dagster.runs()).items()))
        memory = sampler.current_mb()
        series.append({"minute": minute, "operations": sum(counts["done"].values()), "runs": states, **memory})
        print(
            f"minute {minute:3d}: {series[-1]['operations']:5d} operations, faults {counts['faults']}, runs {states}, "
            f"daemon {memory['daemon']:.0f} MB, webserver {memory['webserver']:.0f} MB",
            flush=True,
        )
    figures["series"] = series
    figures["instance_processes"] = len(_instance_processes(sampler.home))  # what the orphan check looks for
    figures["operations"] = counts = sandbox.ask("halt")
    figures["settle_seconds"] = round(_settle(dagster, counts["at"], max(900, 20 * args.sensor_interval)))
    dagster.stop_sensor()
    print(
        f"changes stopped: {counts['done']} (refused {counts['refused']}); faults applied {counts['faults']}; "
        f"settled {figures['settle_seconds']} s after the last change (a later tick found nothing to sync)"
    )

    before = sandbox.ask("compare", db_url)
    figures["mismatches_before_reconciliation"] = before
    first = [m[:150] for found in before.values() for m in found][:2]
    print(f"after the sensor alone: mismatches per space { {k: len(v) for k, v in before.items()} } {first}")
    launched = {
        dagster.client.submit_job_execution("confluence_reconciliation_job", tags={"dagster/partition": key})
        for key in keys
    }
    runs, _ = _wait_for_runs(dagster, "reconciliation", lambda r: r["runId"] in launched, len(launched), 1800)
    figures["reconciliation_runs"] = dict(Counter(r["status"] for r in runs))
    print(f"reconciliation of every space: runs {figures['reconciliation_runs']}")
    figures["mismatches"] = sandbox.ask("compare", db_url)

    every_run = dagster.runs()
    figures["stuck"] = [f"{r['jobName']} {_partition(r)} {r['status']}" for r in every_run if r["status"] in IN_FLIGHT]
    figures["runs"] = dict(Counter(r["status"] for r in every_run))
    figures["failed"] = [
        {"job": r["jobName"], "partition": _partition(r), "repaired": _repaired(r, every_run)}
        for r in every_run
        if r["status"] == "FAILURE"
    ]
    return figures


def _repaired(failed: dict, runs: list[dict]) -> bool:
    """A later run of the same partition succeeded."""
    return any(
        r["status"] == "SUCCESS" and _partition(r) == _partition(failed) and r["startTime"] > failed["startTime"]
        for r in runs
    )


def _flat(samples: list[float]) -> tuple[bool | None, str]:
    if len(samples) < 6:
        return None, f"{len(samples)} samples, fewer than 6: not judged"
    early, late = statistics.mean(samples[2:5]), statistics.mean(samples[-3:])
    return late <= FLAT_RATIO * early, f"last 3 mean {late:.0f} MB vs samples 3-5 mean {early:.0f} MB"


def _checks(figures: dict) -> list[tuple[str, bool | None, str]]:
    mismatches = figures["mismatches"]
    first = [m for found in mismatches.values() for m in found][:3]
    failed = figures["failed"]
    per_space = {k: len(v) for k, v in mismatches.items()}
    failed_list = [(f["job"], f["partition"], "repaired" if f["repaired"] else "not repaired") for f in failed]
    orphans, errors = figures["orphans"], figures["operations"]["errors"]
    checks = [
        ("database equals sandbox", not any(per_space.values()), f"mismatches per space {per_space} {first or ''}"),
        ("no run stuck", not figures["stuck"], f"{len(figures['stuck'])} in flight {figures['stuck'][:5]}"),
        ("failed runs repaired", all(f["repaired"] for f in failed), f"{len(failed)} failed {failed_list[:10]}"),
        ("no orphan process", not orphans, f"{len(orphans)} of {figures['instance_processes']} left {orphans[:5]}"),
        ("operations without errors", not errors, f"{len(errors)} errors {errors[:3]}"),
    ]
    for kind in ("daemon", "webserver"):
        passed, detail = _flat([s[kind] for s in figures["series"]])
        checks.append((f"{kind} memory flat", passed, f"{detail}; series {[s[kind] for s in figures['series']]}"))
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", type=int, default=4)
    parser.add_argument("--pages", type=int, default=100, help="pages per space, the homepage included")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between operations")
    parser.add_argument("--sensor-interval", type=int, default=30, help="the change sensor's interval (s)")
    parser.add_argument("--fault-every", type=int, default=50, help="operations between fault bursts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    sandbox = SoakSandbox(args)
    environment = instance_environment(sandbox.site, args.sensor_interval)
    try:
        with dev_instance([], prefix="ca-soak-", sandbox=False, environment=environment) as dev:
            home = dev.home
            sampler = MinuteSampler(dev.pid, dev.home, interval=5.0)
            sampler.start()
            figures = _soak(args, Dagster(dev.port), dev.database_url, sandbox, sampler)
            sampler.stop.set()
            figures["peak_rss_mb"] = sampler.peaks_mb()
        figures["orphans"] = _orphans(home)
    finally:
        sandbox.stop()
    checks = _checks(figures)
    figures["checks"] = {name: passed for name, passed, _ in checks}
    print("checks:")
    for name, passed, detail in checks:
        print(f"  {'SKIP' if passed is None else 'PASS' if passed else 'FAIL'} {name}: {detail}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    sys.exit(1 if any(passed is False for _, passed, _ in checks) else 0)


if __name__ == "__main__":
    main()
