"""Extractor: a pool of worker subprocesses, each memory-limited, each file time-limited.

The parent never opens a file: it checks the size with ``stat`` and sends the path. A worker that
overruns the time limit is killed (SIGKILL) and replaced; one that dies (a library crash, the memory
limit hit inside native code) is replaced too, and only its file fails. Workers are started once and
reused, so library imports are paid once per worker.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from confluence_assets.extract.types import FAILED, MB, Extraction, Limits

STARTUP_SECONDS = 60.0
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
Item = tuple[str | os.PathLike, str, str | None]


@dataclass
class PoolStats:
    files: int = 0
    extracted: int = 0
    failed: int = 0
    skipped: int = 0
    worker_starts: int = 0
    timeouts: int = 0
    crashes: int = 0
    peak_worker_rss_bytes: int = 0  # the largest resident set any worker reached (VmHWM / ru_maxrss)


def _vm_peaks(pid: int) -> tuple[int, int]:
    """(VmHWM, VmPeak) of a live process in bytes: its peak resident set and peak address space."""
    found = {"VmHWM": 0, "VmPeak": 0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key = line.split(":", 1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found["VmHWM"], found["VmPeak"]


class _Worker:
    def __init__(self, limits: Limits) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "confluence_assets.extract.worker", json.dumps(asdict(limits))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.buffer = bytearray()
        self.ready = False
        self.job: tuple[int, Item] | None = None
        self.deadline = time.monotonic() + STARTUP_SECONDS
        self.peak_vm = 0
        self.peak_rss = 0
        self.retiring = False
        os.set_blocking(self.process.stdout.fileno(), False)

    @property
    def fd(self) -> int:
        return self.process.stdout.fileno()

    def send(self, index: int, item: Item, timeout: float) -> None:
        path, filename, declared = item
        line = json.dumps({"path": os.fspath(path), "filename": filename, "declared": declared}) + "\n"
        self.process.stdin.write(line.encode())
        self.process.stdin.flush()
        self.job = (index, item)
        self.deadline = time.monotonic() + timeout

    def read_lines(self) -> tuple[list[dict], bool]:
        """Complete answer lines read so far, and whether the worker closed its end (died)."""
        closed = False
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                closed = True
                break
            self.buffer += chunk
        lines = []
        while (end := self.buffer.find(b"\n")) >= 0:
            lines.append(json.loads(self.buffer[:end]))
            del self.buffer[: end + 1]
        return lines, closed

    def sample(self) -> None:
        rss, vm = _vm_peaks(self.process.pid)
        self.peak_rss, self.peak_vm = max(self.peak_rss, rss), max(self.peak_vm, vm)

    def stop(self, *, kill: bool = True) -> None:
        """Kill it, or (``kill=False``, an idle worker) close its input so that it exits on its own."""
        if self.process.poll() is None:
            self.sample()
            if not kill:
                try:
                    self.process.stdin.close()
                    self.process.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if self.process.poll() is None:
                self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class Extractor:
    """``with Extractor(Limits()) as ex: for result in ex.extract_many(items): ...`` where each item is
    ``(path, filename, declared_media_type)``; results come in the items' order, at most
    ``4 * workers`` files ahead of the caller (so memory does not grow with the batch). One thread at a
    time: an Extractor is not shared between threads."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = PoolStats()
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()

    def __enter__(self) -> Extractor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        while len(self._workers) < self.limits.workers:
            self._spawn()

    def close(self) -> None:
        for worker in self._workers:  # idle ones all told first: they exit side by side, not one by one
            if worker.job is None:
                try:
                    worker.process.stdin.close()
                except OSError:
                    pass
        for worker in self._workers:
            self._retire(worker, kill=worker.job is not None)
        self._workers = []
        self._selector.close()

    def worker_pids(self) -> list[int]:
        return [worker.process.pid for worker in self._workers]

    def extract(self, path: str | os.PathLike, filename: str = "", declared: str | None = None) -> Extraction:
        (result,) = self.extract_many([(path, filename, declared)])
        return result

    def extract_many(self, items: Iterable[Item]) -> Iterator[Extraction]:
        self.start()
        try:
            yield from self._run(iter(enumerate(items)), window=4 * self.limits.workers)
        finally:  # the caller stopped early (or an error): files still in workers are abandoned with them
            for worker in [w for w in self._workers if w.job is not None]:
                self._replace(worker)

    def _run(self, pending: Iterator[tuple[int, Item]], window: int) -> Iterator[Extraction]:
        done: dict[int, Extraction] = {}
        waiting: deque[tuple[int, Item]] = deque()
        next_out = 0
        exhausted = False
        while True:
            while not exhausted and len(waiting) + self._busy() + len(done) < window:
                entry = next(pending, None)
                if entry is None:
                    exhausted = True
                    break
                index, item = entry
                early = self._without_worker(item)
                if early is not None:
                    done[index] = early
                else:
                    waiting.append((index, item))
            for worker in list(self._workers):
                if worker.ready and worker.job is None and not worker.retiring and waiting:
                    entry = waiting.popleft()
                    try:
                        worker.send(*entry, self.limits.timeout_seconds)
                    except (BrokenPipeError, OSError):  # it died since its last answer: not this file's fault
                        worker.job = None
                        waiting.appendleft(entry)
                        self._replace(worker)
            while next_out in done:
                yield self._count(done.pop(next_out))
                next_out += 1
            if exhausted and not waiting and not self._busy() and not done:
                return
            for index, result in self._wait():
                done[index] = result

    # -- internals -------------------------------------------------------------------------------

    def _busy(self) -> int:
        return sum(1 for worker in self._workers if worker.job is not None)

    def _spawn(self) -> _Worker:
        worker = _Worker(self.limits)
        self._workers.append(worker)
        self._selector.register(worker.fd, selectors.EVENT_READ, worker)
        self.stats.worker_starts += 1
        return worker

    def _retire(self, worker: _Worker, *, kill: bool = True) -> None:
        try:
            self._selector.unregister(worker.fd)
        except (KeyError, ValueError):
            pass
        worker.stop(kill=kill)
        self.stats.peak_worker_rss_bytes = max(self.stats.peak_worker_rss_bytes, worker.peak_rss)

    def _replace(self, worker: _Worker) -> None:
        self._retire(worker)
        self._workers.remove(worker)
        self._spawn()

    def _without_worker(self, item: Item) -> Extraction | None:
        """What is decided from ``stat`` alone: a missing or oversized file never reaches a worker."""
        from confluence_assets.extract.run import oversize_reason

        path, filename, declared = item
        base = Extraction(status=FAILED, filename=filename, declared_media_type=declared or "")
        try:
            size = os.stat(path).st_size
        except OSError:
            base.reason = "file not found"
            return base
        if size > self.limits.max_file_bytes:
            base.reason = oversize_reason(size, self.limits)
            return base
        return None

    def _count(self, result: Extraction) -> Extraction:
        self.stats.files += 1
        setattr(self.stats, result.status, getattr(self.stats, result.status, 0) + 1)
        self.stats.peak_worker_rss_bytes = max(self.stats.peak_worker_rss_bytes, result.worker_peak_rss_bytes)
        return result

    def _wait(self) -> list[tuple[int, Extraction]]:
        now = time.monotonic()
        timeout = max(0.0, min((w.deadline for w in self._workers if w.job or not w.ready), default=now + 1) - now)
        finished: list[tuple[int, Extraction]] = []
        for key, _events in self._selector.select(timeout=min(timeout, 0.25)):
            worker: _Worker = key.data
            lines, closed = worker.read_lines()
            for line in lines:
                if line.get("ready"):
                    worker.ready = True
                    continue
                if worker.job is not None:
                    finished.append(self._answer(worker, line))
            if closed:
                finished += self._died(worker)
            elif worker.retiring:  # it exits after a memory-limit answer: never hand it another file
                self._replace(worker)
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None or not worker.ready:
                worker.sample()
            if now > worker.deadline and (worker.job is not None or not worker.ready):
                finished += self._timed_out(worker)
        return finished

    def _answer(self, worker: _Worker, line: dict) -> tuple[int, Extraction]:
        index, (_path, filename, declared) = worker.job
        worker.job = None
        result = Extraction.from_dict(line)
        result.filename, result.declared_media_type = filename, declared or ""
        worker.retiring = bool(result.details.pop("restart", False))
        worker.peak_rss = max(worker.peak_rss, result.worker_peak_rss_bytes)
        return index, result

    def _failed_job(self, worker: _Worker, reason: str) -> list[tuple[int, Extraction]]:
        if worker.job is None:
            return []
        index, (_path, filename, declared) = worker.job
        worker.job = None
        result = Extraction(status=FAILED, reason=reason, filename=filename, declared_media_type=declared or "")
        result.worker_peak_rss_bytes = worker.peak_rss
        return [(index, result)]

    def _died(self, worker: _Worker) -> list[tuple[int, Extraction]]:
        code = worker.process.wait()
        if not worker.ready:
            raise RuntimeError(f"the extraction worker could not start (exit status {code})")
        limit = self.limits.memory_bytes
        if code < 0:
            self.stats.crashes += 1
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            if worker.peak_vm >= 0.9 * limit:
                reason = f"memory limit: needed more than {limit // MB} MB (the worker died of {name})"
            else:
                reason = f"extraction worker crashed ({name})"
        else:
            reason = "memory limit" if code == 3 else f"extraction worker exited ({code})"
        finished = self._failed_job(worker, reason)
        self._replace(worker)
        return finished

    def _timed_out(self, worker: _Worker) -> list[tuple[int, Extraction]]:
        if not worker.ready:
            self._retire(worker)
            raise RuntimeError(f"the extraction worker did not start within {STARTUP_SECONDS:.0f} s")
        self.stats.timeouts += 1
        seconds = self.limits.timeout_seconds
        finished = self._failed_job(worker, f"timed out after {seconds:g} s")
        self._replace(worker)
        return finished
