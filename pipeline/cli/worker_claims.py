"""What a worker needs to itself on its host, checked before it joins the group: its data dir (held
with a lock for its lifetime) and its web port.

Two workers on one data dir would share RocksDB files (the second one dies on RocksDB's lock after
it joined the group and forced a rebalance); two on one web port would fail once Faust starts its
web server, after recovery. Both are refused here in one line instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import ConfigError

LOCK_FILE = "worker.lock"


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` (created if missing) for this process until the block ends; ConfigError
    when it cannot be written or another worker holds it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(data_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
        lock = (data_dir / LOCK_FILE).open("a+")
    except OSError as exc:
        raise ConfigError(
            f"CONTACTSYNC_DATA_DIR={data_dir} cannot be used: {exc.strerror}; "
            "set it to a directory this worker can create and write"
        ) from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise ConfigError(
                f"data dir {data_dir} is in use by another worker (pid {holder}); "
                "give each worker its own CONTACTSYNC_DATA_DIR"
            ) from None
        lock.truncate(0)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield  # the lock goes with the process, however it ends


def check_web_port(host: str, port: int) -> None:
    """ConfigError when this worker could not listen on ``host:port``: another process holds it, or
    the address is not one of this machine's. Binds as the web server will (every address of
    ``host``, address reuse on), then lets go."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"CONTACTSYNC_WEB_HOST={host} does not resolve: {exc.strerror}") from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(
                        f"web port {port} on {host} is in use (by another worker?); give each worker "
                        "its own CONTACTSYNC_WEB_PORT or --web-port"
                    ) from None
                raise ConfigError(
                    f"cannot listen on {host}:{port} (CONTACTSYNC_WEB_HOST, CONTACTSYNC_WEB_PORT): {exc.strerror}"
                ) from None
