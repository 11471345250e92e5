"""Contact rows from a snapshot file: JSON Lines (one object per line) or CSV with a header row.

Columns are those of the contacts table (``schemas.cdc.ContactRow``; others are ignored); in CSV
an empty cell is a NULL (false for the flags). A row that is not a contact (no id, a malformed line) is a ConfigError naming
its line, found before anything is sent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.errors import ConfigError
from schemas.cdc import ContactRow

FORMATS = (".jsonl", ".csv")


def read_rows(path: Path) -> Iterator[ContactRow]:
    """Every row of ``path`` in file order."""
    if path.suffix not in FORMATS:
        raise ConfigError(f"{path}: expected a .jsonl or .csv snapshot file")
    try:
        with path.open(newline="", encoding="utf-8") as lines:
            documents = _csv_documents(lines) if path.suffix == ".csv" else _jsonl_documents(lines, path)
            for line, document in documents:
                yield _row(document, path, line)
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


def _row(document: Any, path: Path, line: int) -> ContactRow:
    try:
        return ContactRow.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        raise ConfigError(f"{path}:{line}: {where}: {first['msg']}") from None
