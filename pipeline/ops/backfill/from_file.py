"""Contact rows from a snapshot file: JSON Lines (one object per line) or CSV with a header row.

Columns are those of the contacts table, read through the source mapping (others are ignored); in
CSV an empty cell is a NULL (false for the flags). A row that is not a contact (no id, a malformed
line) is a ConfigError naming its line, found before anything is sent. A backfill resumes a file
by skipping the rows it has sent, and refuses a file whose size or modification time changed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.ops.backfill.publish import BackfillState, SourceRow, checked_row, source_block
from pipeline.stages.source_mapping import SourceMapping

FORMATS = (".jsonl", ".csv")


class FileRows:
    """The rows of a snapshot file, as a backfill's row source; its progress is kept beside it."""

    def __init__(self, path: Path, mapping: SourceMapping) -> None:
        if not path.is_file():
            raise ConfigError(f"--from {path}: no such file")
        self.path = path
        self._mapping = mapping
        self.label = str(path)
        self.state_file = path.with_name(path.name + ".backfill.json")

    def origin(self) -> dict[str, Any]:
        stat = self.path.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def snapshot_source(self, *, as_of_ms: int | None, lsn: int | None) -> dict[str, Any]:
        """As of ``as_of_ms``, by default the file's modification time."""
        ts_ms = as_of_ms if as_of_ms is not None else self.path.stat().st_mtime_ns // 1_000_000
        return source_block(self.path.name, "contacts", ts_ms, lsn)

    def remaining(self, state: BackfillState) -> int:
        """Reads and checks every row of the file, so that a bad one stops the backfill before the first is sent."""
        return sum(1 for _ in read_rows(self.path, self._mapping)) - state.rows_done

    def rows(self, state: BackfillState) -> Iterator[SourceRow]:
        return islice(read_rows(self.path, self._mapping), state.rows_done, None)


def read_rows(path: Path, mapping: SourceMapping) -> Iterator[SourceRow]:
    """Every row of ``path`` in file order."""
    if path.suffix not in FORMATS:
        raise ConfigError(f"{path}: expected a .jsonl or .csv snapshot file")
    try:
        with path.open(newline="", encoding="utf-8") as lines:
            documents = _csv_documents(lines) if path.suffix == ".csv" else _jsonl_documents(lines, path)
            for line, document in documents:
                yield checked_row(document, f"{path}:{line}", mapping)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None


def _jsonl_documents(lines: Iterator[str], path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not JSON ({exc.msg})") from None


def _csv_documents(lines: Iterator[str]) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(lines)
    for document in reader:
        yield reader.line_num, {column: value for column, value in document.items() if column and value}

