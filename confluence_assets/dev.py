"""``confluence-assets dev``: the Dagster UI and daemon on the embedded database, in one command.

Reads the settings first (a bad value stops it in one line, before anything starts), starts the embedded
PostgreSQL if needed, applies migrations, prepares DAGSTER_HOME (dagster.yaml with storage in the same
PostgreSQL) and runs ``dg dev`` in its own process group: on the dg project (``[tool.dg]`` in the source
checkout's pyproject.toml), or on the module ``confluence_assets.definitions`` in a wheel install. With
``--sandbox`` it also serves the sandbox Confluence (a generated corpus plus the real sample pages) and the
lexical embeddings server from this process and points the resources at them; ``--local-embeddings``
serves the real local model (all-MiniLM-L6-v2, 384 d, the ``local-embeddings`` extra) instead. Ctrl-C or SIGTERM stops
everything it started: Dagster's process group, the sandbox servers, and the embedded server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from pathlib import Path

import psutil

from confluence_assets import settings
from confluence_assets.db import embedded, migrations
from confluence_assets.db.connection import resolve_dagster_storage_url, resolve_database

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
STORAGE_URL_ENV = settings.CONFLUENCE_ASSETS_DAGSTER_STORAGE_URL  # alias; dagster.yaml reads it
DEFINITIONS_MODULE = "confluence_assets.definitions"
# Not a setting of ours: the variable by which dg tells which virtual environment is active.
VIRTUAL_ENV = "VIRTUAL_ENV"


def _project_file(name: str) -> Path | None:
    """A file shipped at the repository root (source checkout) or inside the package (wheel)."""
    for candidate in (PACKAGE_DIR.parent / name, PACKAGE_DIR / name):
        if candidate.is_file():
            return candidate
    return None


def prepare_dagster_home(home: Path) -> Path:
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    source = _project_file("dagster.yaml")
    if source is None:
        raise FileNotFoundError("dagster.yaml is missing from the installation")
    shutil.copyfile(source, dagster_home / "dagster.yaml")
    return dagster_home


def dg_project_root() -> Path | None:
    """The source checkout's root when its pyproject.toml makes it a dg project (``[tool.dg]``), else None."""
    pyproject = PACKAGE_DIR.parent / "pyproject.toml"
    try:
        config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return pyproject.parent if "dg" in config.get("tool", {}) else None


def dagster_command(args: argparse.Namespace) -> list[str]:
    """``dg dev`` (the ``dg`` beside this Python) on the dg project, or on the module in a wheel install.

    With ``--target-path``, dg reads the project's ``[tool.dg]`` and runs Dagster from the project root
    (it changes directory there itself, whatever our cwd); the instance is still ``$DAGSTER_HOME``'s.
    """
    dg = Path(sys.executable).with_name("dg")
    command = [str(dg) if dg.exists() else "dg", "dev", "-h", args.host, "-p", str(args.port)]
    root = dg_project_root()
    if root is not None:
        return [*command, "--target-path", str(root)]
    return [*command, "-m", DEFINITIONS_MODULE]


def dg_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's virtual environment marked active (as ``activate`` does): dg warns
    when the project's .venv is not the active one, and it is, even when nobody activated it."""
    if sys.prefix != sys.base_prefix:
        return {**env, VIRTUAL_ENV: sys.prefix}
    return env


class SandboxHandle:
    """The sandbox servers served from this process for the demo."""

    def __init__(self, args: argparse.Namespace) -> None:
        from confluence_assets.sandbox import (
            ConfluenceServer,
            EmbeddingsServer,
            Site,
            default_samples_dir,
            generate_corpus,
            load_samples,
        )

        self.site = Site(timezone=args.sandbox_timezone)
        self.info = generate_corpus(
            self.site, seed=args.sandbox_seed, spaces=args.sandbox_spaces, pages_per_space=args.sandbox_pages
        )
        self.spaces = list(self.info.space_keys)
        if os.path.isdir(default_samples_dir()):
            load_samples(self.site, "QM")
            self.spaces.append("QM")
        self.conf = ConfluenceServer(self.site, port=args.sandbox_confluence_port).start()
        self.model: tuple[str, int] | None = None  # (model, dimensions) when not the settings' own
        if args.local_embeddings:
            from confluence_assets.embeddings.local_model import LOCAL_MODEL, local_embeddings_server
            from confluence_assets.sandbox.embeddings_server import DEFAULT_API_KEY

            self.emb = local_embeddings_server(
                embedded.assets_home() / "models", port=args.sandbox_embeddings_port, api_key=DEFAULT_API_KEY
            ).start()
            self.model = (LOCAL_MODEL, self.emb.source.models[LOCAL_MODEL])
        else:
            self.emb = EmbeddingsServer(port=args.sandbox_embeddings_port).start()
        self.timezone = args.sandbox_timezone

    def environment(self) -> dict[str, str]:
        return {
            settings.CONFLUENCE_URL: self.conf.url,
            settings.CONFLUENCE_EMAIL: self.conf.email,
            settings.CONFLUENCE_API_TOKEN: self.conf.api_token or "",
            settings.CONFLUENCE_SITE_TIMEZONE: self.timezone,
            settings.OPENAI_API_KEY: self.emb.api_key or "",
            settings.OPENAI_BASE_URL: self.emb.url,
            **self._model_environment(),
        }

    def _model_environment(self) -> dict[str, str]:
        if self.model is None:
            return {}
        return {settings.EMBEDDING_MODEL: self.model[0], settings.EMBEDDING_DIMENSIONS: str(self.model[1])}

    def describe_embeddings(self) -> str:
        if self.model is None:
            return f"sandbox embeddings {self.emb.url} (a lexical stand-in, not a semantic model)"
        return f"local embeddings {self.emb.url} ({self.model[0]}, {self.model[1]} d, a real model on the CPU)"

    def search_hint(self) -> str:
        """The command that searches what this sandbox syncs (its keys are the sandbox's own, not secrets)."""
        home = settings.env(settings.CONFLUENCE_ASSETS_HOME)
        prefix = f"{settings.CONFLUENCE_ASSETS_HOME}={shlex.quote(home)} " if home else ""
        model = " ".join(f"{k}={v}" for k, v in self._model_environment().items())
        return (
            f"{prefix}{settings.OPENAI_BASE_URL}={self.emb.url} {settings.OPENAI_API_KEY}={self.emb.api_key} "
            f'{model + " " if model else ""}confluence-assets search "your query"'
        )

    def stop(self) -> None:
        self.conf.stop()
        self.emb.stop()


def _wait_for_ui(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/server_info", timeout=2) as response:  # noqa: S310 - our own URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def _processes_with_home(dagster_home: str) -> list[psutil.Process]:
    """Live Dagster processes (other than this one) started with ``dagster_home`` as their DAGSTER_HOME.

    Only Dagster's own (a PostgreSQL started with the same environment is stopped by its owner, in order).
    """
    found = []
    for candidate in psutil.process_iter(["environ", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            environ = candidate.info["environ"] or {}
            dagster = any("dagster" in part for part in candidate.info["cmdline"] or [])
            if candidate.pid != os.getpid() and dagster and environ.get(settings.DAGSTER_HOME) == dagster_home:
                found.append(candidate)
    return found


def _end(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    for child in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _stop_dagster(proc: subprocess.Popen, dagster_home: str, grace: float = 20.0) -> None:
    """Stop `dg dev` and every process under it.

    Dagster's code servers launch run workers that outlive their parent if it dies first, so the whole
    tree is recorded before the signal and whatever survives the grace period is killed. A code server the
    daemon or the webserver starts while they shut down is not in that record and, detached from its dead
    parent, would live until its heartbeat times out: every process still carrying this DAGSTER_HOME is
    ended too.
    """
    if proc.poll() is not None:
        return
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass
    _end(tree)
    for _ in range(3):  # a late code server may itself have started a child before it was ended
        late = _processes_with_home(dagster_home)
        if not late:
            break
        _end(late)


def run(args: argparse.Namespace, out=print) -> int:
    config = settings.load()  # the code location loads the same settings: refuse a bad value here, first
    home = embedded.assets_home()
    uses_embedded = config.database.url is None
    started_db = uses_embedded and not embedded.is_running()
    sandbox: SandboxHandle | None = None
    proc: subprocess.Popen | None = None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        target = resolve_database()
        applied = migrations.migrate(target.url)
        out(
            f"database {target.masked} ({'embedded' if target.embedded else settings.DATABASE_URL}); "
            f"{len(applied)} migrations applied"
        )
        env = dict(os.environ)
        dagster_home = env[settings.DAGSTER_HOME] = str(prepare_dagster_home(home))
        env[STORAGE_URL_ENV] = os.environ[STORAGE_URL_ENV] = resolve_dagster_storage_url()
        from confluence_assets.defs.pools import prepare_pools_in  # dagster: imported only when needed

        pools = prepare_pools_in(dagster_home)
        out("Dagster pools " + ", ".join(f"{name} ({limit} slots)" for name, limit in pools.items()))
        if args.sandbox:
            sandbox = SandboxHandle(args)
            env.update(sandbox.environment())
            spaces = ", ".join(sandbox.spaces)
            out(f"sandbox Confluence {sandbox.conf.url} (spaces {spaces}; credentials passed to Dagster)")
            out(sandbox.describe_embeddings())
            out(f"search from another shell: {sandbox.search_hint()}")
        # cwd DAGSTER_HOME: with -m (a wheel install) Dagster runs from here and finds no other dagster.yaml to
        # warn about. dg dev on the project changes into the project root itself (pushd) and then warns that
        # the checkout's dagster.yaml is not the one in use: right, the copy in DAGSTER_HOME is.
        proc = subprocess.Popen(
            dagster_command(args), env=dg_environment(env), cwd=dagster_home, start_new_session=True
        )
        ui = f"http://{args.host}:{args.port}"
        if _wait_for_ui(ui, proc):
            out(f"Dagster UI {ui}  ({settings.DAGSTER_HOME}={dagster_home}); Ctrl-C stops everything")
        while not stop.is_set() and proc.poll() is None:
            stop.wait(0.5)
        return 0 if stop.is_set() else (proc.returncode or 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc is not None:
            _stop_dagster(proc, dagster_home)
        if sandbox is not None:
            sandbox.stop()
        if started_db and not args.keep_database:
            embedded.stop_embedded_server()
        out("stopped")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the Dagster UI (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3000, help="port of the Dagster UI (default 3000)")
    parser.add_argument("--sandbox", action="store_true", help="serve the sandbox Confluence and embeddings too")
    parser.add_argument(
        "--local-embeddings",
        action="store_true",
        help="with --sandbox: embed with the real local model (all-MiniLM-L6-v2; the local-embeddings extra)",
    )
    parser.add_argument("--keep-database", action="store_true", help="leave the embedded PostgreSQL running")
    parser.add_argument("--sandbox-seed", type=int, default=7, help="sandbox corpus seed")
    parser.add_argument("--sandbox-spaces", type=int, default=2, help="generated sandbox spaces (default 2)")
    parser.add_argument("--sandbox-pages", type=int, default=100, help="pages per generated space (default 100)")
    parser.add_argument("--sandbox-timezone", default="Asia/Seoul", help="the sandbox site's time zone")
    parser.add_argument("--sandbox-confluence-port", type=int, default=0, help="0: any free port")
    parser.add_argument("--sandbox-embeddings-port", type=int, default=0, help="0: any free port")
