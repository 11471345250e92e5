"""A throwaway PostgreSQL server for the tests, the Postgres demo and the CDC benchmark.

The server is the Debian ``postgresql`` package's (``.ci/run`` installs it when missing): ``initdb``
on the PATH, else the newest ``/usr/lib/postgresql/<version>/bin``. It gets a new cluster in a
temporary directory, trust authentication and a Unix socket in that directory only (no TCP), so no
other process on the machine can reach it or collide with its port. PostgreSQL refuses to run as
root; as root, the cluster belongs to the ``postgres`` user (made by the package), else ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import ConfigError

MISSING = "PostgreSQL's server is not installed (no initdb or pg_ctl): apt-get install postgresql"
_PORT = 5432  # only names the socket file, in a directory of our own
_START_TIMEOUT_S = 60


def server_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    installed = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(installed[-1]).parent if installed else None


def require_server_bin() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``; a ConfigError saying what to install otherwise."""
    bin_dir = server_bin()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        raise ConfigError(MISSING)
    return bin_dir


@contextmanager
def postgres_server(bin_dir: Path, *, logical_port: int | None = None) -> Iterator[str]:
    """Yield the DSN of a new cluster's ``postgres`` database; stop the server and remove it afterwards.

    With ``logical_port``, the server also listens on 127.0.0.1 at that port (Debezium connects over
    TCP, trusted like the socket) with ``wal_level=logical``, and the DSN names that address."""
    run_as = _server_user()
    run_dir = Path(tempfile.mkdtemp(prefix="contactsync-pg-"))  # short: a socket path has ~100 bytes
    try:
        if run_as:
            shutil.chown(run_dir, run_as, run_as)
        data = run_dir / "data"
        _run(run_as, run_dir, bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions")
        port = logical_port or _PORT
        listen = "127.0.0.1" if logical_port else ""
        options = f"-p {port} -k {run_dir} -c listen_addresses='{listen}' -c fsync=off -c full_page_writes=off"
        if logical_port:
            options += " -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4"
        _run(run_as, run_dir, bin_dir / "pg_ctl", "-D", data, "-l", run_dir / "server.log", "-o", options,
             "-w", "-t", str(_START_TIMEOUT_S), "start")
        try:
            host = "127.0.0.1" if logical_port else run_dir
            yield f"host={host} port={port} user=postgres dbname=postgres"
        finally:
            _run(run_as, run_dir, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _server_user() -> str | None:
    """Who runs the server: None for the current user, unless that is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres").pw_name
    except KeyError:
        return "nobody"


def _run(run_as: str | None, cwd: Path, *command: str | Path) -> None:
    """Run a server command (as ``run_as``); a failure raises with its output and the server log."""
    argv = [str(part) for part in command]
    if run_as:
        argv = ["runuser", "-u", run_as, "--", *argv]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=_START_TIMEOUT_S + 30, check=False)
    if done.returncode != 0:
        log = cwd / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")

