"""Running a Java service from Maven Central jars (the local Kafka broker, the Kafka Connect worker):
the tools it needs, Maven's errors in one line, and a process found, waited for and stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

from pipeline.errors import ConfigError

INSTALL_HINTS = {
    "java": "install OpenJDK 17 (apt-get install openjdk-17-jre-headless)",
    "mvn": "install Maven (apt-get install maven)",
}


def require_tool(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ConfigError(f"{tool} not found: {INSTALL_HINTS[tool]}")
    return path


def mvn_error(output: str) -> str:
    errors = [line for line in output.splitlines() if line.startswith("[ERROR]")]
    return errors[0] if errors else last_line(output)


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def cmdline(pid: int) -> list[bytes]:
    """The process's arguments; empty when it is gone or a zombie."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return []


def child_pids(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (each is listed under the thread that started it)."""
    threads = Path(f"/proc/{pid}/task").glob("*/children")
    return [int(child) for thread in threads for child in thread.read_text().split()]


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:  # reap it when it is our child, or it lingers as a zombie
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not cmdline(pid):
            return True
        time.sleep(0.1)
    return False


def check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ConfigError(f"port {host}:{port} is in use: free it, set another port or use --free-ports") from None


def stop_recorded(pid_file: Path, pid: int | None, timeout_s: float) -> bool:
    """Forget ``pid_file`` and stop ``pid``, the service it recorded when that still runs (else
    None): SIGTERM, SIGKILL after ``timeout_s``. False if nothing ran."""
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    stop_process(pid, timeout_s)
    return True


def stop_process(pid: int, timeout_s: float) -> None:
    """SIGTERM (a controlled shutdown), SIGKILL if it is still there ``timeout_s`` later."""
    os.kill(pid, signal.SIGTERM)
    if not wait_gone(pid, timeout_s):
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10.0)
