"""What every ``contactsync`` command, ``worker`` too, imports before it runs."""

from __future__ import annotations

import subprocess
import sys

IMPORT_EVERY_COMMAND = """
import pkgutil, sys
import pipeline.cli
for module in pkgutil.iter_modules(pipeline.cli.__path__):
    __import__(f"pipeline.cli.{module.name}")
print(" ".join(name for name in ("psycopg", "jsonschema") if name in sys.modules))
"""


def test_command_modules_leave_postgres_and_the_simulators_to_their_commands() -> None:
    """Importing every command's module (as ``contactsync worker`` does) imports neither psycopg nor
    jsonschema: a worker would carry them, 12 MB, for its lifetime."""
    found = subprocess.run(  # a fresh interpreter: this one has imported what other tests needed
        [sys.executable, "-c", IMPORT_EVERY_COMMAND], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == []
