"""A deployed instance for the benches that time it: `confluence-assets dev --sandbox` in its own process group.

    from dev_instance import dev_instance, wait_for
    with dev_instance(["--sandbox-spaces", "1"]) as dev:
        ...  # dev.port (the webserver), dev.home (CONFLUENCE_ASSETS_HOME), dev.log (its output so far)

``sandbox=False`` leaves out ``--sandbox``: the bench serves its own Confluence and embeddings (and passes
their URLs and credentials in ``environment``), so that it can read their request counts.

The command's embedded PostgreSQL, webserver, daemon and sandbox servers live under a throwaway
CONFLUENCE_ASSETS_HOME with the sensors stopped (a bench starts what it times); leaving the block stops
the whole tree as Ctrl-C does, kills what is left and removes the home. Used by bench/one_edit.py,
bench/ui_scale.py and bench/scale_run.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

CLI = str(Path(sys.executable).parent / "confluence-assets")
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """``predicate()``'s first truthy value, polled every ``interval`` s; exits naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


@dataclass
class DevInstance:
    pid: int  # the dev command's; every process of the instance is in its tree (the database's too)
    port: int
    home: Path
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    @property
    def database_url(self) -> str:
        """The instance's embedded PostgreSQL (its socket directory is the data directory)."""
        return f"postgresql://postgres@/confluence?host={self.home / 'pgdata'}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def dev_instance(
    arguments: list[str],
    prefix: str = "ca-bench-dev-",
    *,
    sandbox: bool = True,
    environment: dict[str, str] | None = None,
) -> Iterator[DevInstance]:
    """`confluence-assets dev [--sandbox] --port <free> *arguments` with ``environment`` set, once its UI answers."""
    home = Path(tempfile.mkdtemp(prefix=prefix)) / "home"
    port = _free_port()
    env = {**os.environ, "CONFLUENCE_ASSETS_HOME": str(home), "CONFLUENCE_AUTOMATION_DEFAULT": "stopped"}
    for name in ("DATABASE_URL", "DAGSTER_HOME", "CONFLUENCE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    env.update(environment or {})
    log_path = home.parent / "dev.log"
    command = [CLI, "dev", *(["--sandbox"] if sandbox else []), "--port", str(port), *arguments]
    with open(log_path, "w+") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Dagster UI" in log_path.read_text() or proc.poll() is not None, 180, "the UI")
        if proc.poll() is not None:
            raise SystemExit(log_path.read_text()[-2000:])
        yield DevInstance(proc.pid, port, home, log_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(home.parent, ignore_errors=True)
