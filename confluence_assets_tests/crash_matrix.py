"""The crash matrix: sync runs in separate processes, killed with SIGKILL at chosen points (crash points
inside the sync steps, or after a random delay), re-run until they succeed, then compared row for row
with an undisturbed sync of the same content, while a concurrent reader watches the live chunks.

Used by confluence_assets_tests/test_reliability_crash.py (a representative subset by default, the whole
matrix with --run-slow) and by bench/reliability.py (the whole matrix, with figures).

Two phases, each against the same sandbox content:
- ``initial``: the first sync of the space into an empty database;
- ``update``: a database holding the initial sync, after about a third of the pages were edited (and a
  few renamed), so that every swap replaces live chunks: the reader sees whether a page ever loses them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from confluence_assets.db.urls import with_database
from confluence_assets.sandbox import ConfluenceServer, EmbeddingsServer, Site, generate_corpus
from confluence_assets.sync.crashpoints import ENV as CRASH_ENV
from confluence_assets_tests.pipeline_support import SITE_NOW
from confluence_assets_tests.reliability_support import InvariantReader, compare_databases

WORKER_TIMEOUT = 900


@dataclass(frozen=True)
class Scenario:
    phase: str  # initial | update
    crash_at: str | None = None  # a crash point "name:n" (confluence_assets/sync/crashpoints.py)
    kill_at: float | None = None  # or: SIGKILL from outside at this fraction of the undisturbed run's time

    @property
    def name(self) -> str:
        how = self.crash_at or f"kill at {self.kill_at:.0%} of a run"
        return f"{self.phase}/{how}"


@dataclass
class Outcome:
    scenario: Scenario
    kills: int = 0  # runs that died by SIGKILL
    runs: int = 0  # runs in all, the successful re-run included
    seconds: float = 0.0
    pages_compared: int = 0
    chunks_compared: int = 0
    reader_checks: int = 0
    reader_violations: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.kills >= 1 and not self.reader_violations and not self.differences


def build_site(pages: int, seed: int = 41) -> tuple[Site, str]:
    site = Site(timezone="Asia/Seoul")
    site.clock.set(SITE_NOW)
    info = generate_corpus(site, seed=seed, spaces=1, pages_per_space=pages, large_pages=0, empty_pages=2)
    return site, info.space_keys[0]


def edit_a_third(site: Site, space_key: str, seed: int = 5) -> int:
    """Edit about a third of the pages (a paragraph appended) and rename a few; returns pages changed."""
    rng = random.Random(seed)
    pages = site.live_pages(space_key)
    chosen = rng.sample(pages, max(1, len(pages) // 3))
    site.clock.advance(minutes=5)
    for i, page in enumerate(chosen):
        if i % 10 == 0:
            site.rename_page(page.id, f"{page.title} (revised {i})")
        else:
            site.edit_page(page.id, body=page.body + f"<p>Revision note {i}: checked on the second pass.</p>")
    return len(chosen)


def start_worker(
    conf: ConfluenceServer,
    emb: EmbeddingsServer,
    space_key: str,
    db_url: str,
    *,
    crash_at: str | None = None,
    **options,
) -> subprocess.Popen:
    """Start `python -m confluence_assets_tests.crash_worker` syncing one space against the sandbox;
    ``options`` go into its config (page_size, dagster_home)."""
    config = {
        "space": space_key,
        "db_url": db_url,
        "confluence_url": conf.url,
        "email": conf.email,
        "api_token": conf.api_token,
        "openai_api_key": emb.api_key,
        "openai_base_url": emb.url,
        **options,
    }
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.Popen(  # noqa: S603 - our own module, our own arguments
        [sys.executable, "-m", "confluence_assets_tests.crash_worker", json.dumps(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Databases:
    """Databases of one matrix on the embedded server: created from a template, dropped at the end."""

    def __init__(self, server_url: str, template: str) -> None:
        self.server_url = server_url
        self.template = template
        self.names: list[str] = []

    def create(self, template: str | None = None) -> str:
        name = f"crash_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template or self.template)
                )
            )
        self.names.append(name)
        return with_database(self.server_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            for name in self.names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.names.clear()


def _db_name(url: str) -> str:
    from confluence_assets.db.urls import database_name

    return database_name(url)


class Matrix:
    """Runs scenarios against one sandbox (served from this process, threads) and the embedded server."""

    def __init__(self, site: Site, space_key: str, server_url: str, template: str, *, log=print) -> None:
        self.site = site
        self.space_key = space_key
        self.dbs = Databases(server_url, template)
        self.log = log
        self.conf = ConfluenceServer(site)
        self.emb = EmbeddingsServer()
        self.references: dict[str, str] = {}
        self.initial_db: str | None = None
        self.full_seconds: dict[str, float] = {}
        self.pages_edited = 0

    def __enter__(self) -> Matrix:
        self.conf.start()
        self.emb.start()
        return self

    def __exit__(self, *exc) -> None:
        self.conf.stop()
        self.emb.stop()
        self.dbs.drop_all()

    def worker(self, db_url: str, *, crash_at: str | None = None, kill_after: float | None = None) -> int:
        """One sync run in a child process; its return code (-9 when it died by SIGKILL)."""
        child = start_worker(self.conf, self.emb, self.space_key, db_url, crash_at=crash_at)
        try:
            return child.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            return child.wait(timeout=WORKER_TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    def prepare(self, phase: str) -> None:
        """The phase's undisturbed reference sync. ``initial``: into an empty database. ``update``: the
        site edited, then a copy of the initial reference brought up to date."""
        if phase == "initial":
            db_url = self.dbs.create()
        else:
            self.pages_edited = edit_a_third(self.site, self.space_key)
            db_url = self.dbs.create(template=_db_name(self.references["initial"]))
        started = time.monotonic()
        assert self.worker(db_url) == 0, f"the undisturbed {phase} sync failed"
        self.full_seconds[phase] = time.monotonic() - started
        self.references[phase] = db_url
        self.log(
            f"reference {phase} sync: {self.full_seconds[phase]:.1f}s ({len(self.site.live_pages(self.space_key))} "
            f"pages{f', {self.pages_edited} edited' if phase == 'update' else ''})"
        )

    def run_all(self, scenarios: list[Scenario]) -> list[Outcome]:
        """Every scenario, the initial phase first (the update phase edits the site)."""
        outcomes = []
        for phase in ("initial", "update"):
            mine = [s for s in scenarios if s.phase == phase]
            if mine or (phase == "initial" and any(s.phase == "update" for s in scenarios)):
                self.prepare(phase)
            outcomes.extend(self.run(s) for s in mine)
        return outcomes

    def run(self, scenario: Scenario, *, max_runs: int = 20) -> Outcome:
        """Start from the phase's starting database, kill a run as the scenario says, re-run until a run
        succeeds, and compare with the phase's reference."""
        if scenario.phase == "initial":
            db_url = self.dbs.create()
        else:
            db_url = self.dbs.create(template=_db_name(self.references["initial"]))
        outcome = Outcome(scenario)
        started = time.monotonic()
        kill_after = scenario.kill_at * self.full_seconds[scenario.phase] if scenario.kill_at else None
        with InvariantReader(db_url, self.space_key) as reader:
            code = self.worker(db_url, crash_at=scenario.crash_at, kill_after=kill_after)
            outcome.runs += 1
            while code != 0 and outcome.runs < max_runs:
                outcome.kills += code == -signal.SIGKILL
                code = self.worker(db_url)  # the re-run: no crash point, no kill
                outcome.runs += 1
        outcome.seconds = time.monotonic() - started
        outcome.reader_checks = reader.reads
        outcome.reader_violations = reader.violations[:20]
        if code != 0:
            outcome.differences.append(f"no run succeeded in {outcome.runs} runs (last exit code {code})")
        comparison = compare_databases(db_url, self.references[scenario.phase], self.space_key)
        outcome.pages_compared, outcome.chunks_compared = comparison.pages, comparison.chunks
        outcome.differences.extend(comparison.differences)
        self.log(
            f"{scenario.name:32s} kills={outcome.kills} runs={outcome.runs} {outcome.seconds:6.1f}s "
            f"rows={comparison.rows} reader_checks={reader.reads} violations={len(reader.violations)} "
            f"{'OK' if outcome.ok else 'FAILED ' + '; '.join(outcome.differences)[:300]}"
        )
        return outcome


DETERMINISTIC_POINTS = {
    # (phase, crash point): where it lands in a 1,000-page space (50 pages per listing request,
    # 100 pages per staging batch, 50 per conversion/chunking batch, 512 hashes per embedding batch)
    "initial": (
        "stage_batch:4",  # mid-pagination: 400 pages staged, the listing half done
        "convert_batch:7",  # 350 pages converted, confluence_pages half written
        "attachment_batch:9",  # 450 pages' attachments and comments stored, none of them chunked yet
        "chunk_batch:12",  # 600 pages chunked
        "embed_batch:2",  # 1,024 chunks embedded into staging
        "swap_inside:1",  # inside the first page's swap transaction
        "swap_inside:500",  # inside a swap half-way through
        "complete:1",  # every page swapped, the watermark not yet moved
    ),
    "update": (
        "convert_batch:3",  # edited pages re-converted, their old chunks live
        "swap_inside:50",  # inside a swap that replaces live chunks
        "swap_done:200",  # after the 200th replacement
        "complete:1",
    ),
}


def full_matrix(random_kills: int = 6, seed: int = 8) -> list[Scenario]:
    """Every deterministic point of both phases plus ``random_kills`` SIGKILLs from outside at seeded
    random moments of a run (30-75 % of the undisturbed run's time; the first ~3 s start Python)."""
    out = [Scenario(phase, point) for phase, points in DETERMINISTIC_POINTS.items() for point in points]
    rng = random.Random(seed)
    for i in range(random_kills):
        out.append(Scenario("initial" if i % 2 == 0 else "update", kill_at=round(rng.uniform(0.3, 0.75), 2)))
    return out
