"""Running ``contactsync`` as a user does: a subprocess with only the settings a test gives it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONTACTSYNC = str(Path(sys.executable).parent / "contactsync")


def run_cli(
    env: dict[str, str], *args: str, timeout_s: float = 180, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CONTACTSYNC, *args], env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False, cwd=cwd)


def cli_env(**variables: str) -> dict[str, str]:
    """This process's environment without any CONTACTSYNC_ or KAFKA_ variable, plus ``variables``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CONTACTSYNC_", "KAFKA_"))}
    return {**env, **variables}
