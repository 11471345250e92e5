"""The source table's columns for the contact's fields, read from one YAML file
(``settings.source.mapping``, by default ``pipeline/mappings/source.yaml``).

The CDC decoding (``pipeline.stages.validate``) and the backfill (``pipeline.ops.backfill``) read
rows through it, so a column named ``email_address`` or a type column ``kind`` holding ``L`` and
``C`` mean the same in both. A problem with the file is one line per problem, at start-up; against
a table's own columns, wherever a command knows the table (``problems_with_table``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from pipeline.errors import ConfigError
from schemas.cdc import ContactFields

ColumnName = Annotated[str, Field(min_length=1, max_length=63)]  # Postgres's identifier length
FIELDS = ("id", *ContactFields.model_fields)
TEXT_FIELDS = tuple(name for name, field in ContactFields.model_fields.items() if field.annotation is not bool)
if TYPE_CHECKING:
    SourceColumns = BaseModel
else:  # one column per field, by default the field's name; None: the table has no such column
    SourceColumns = create_model(
        "SourceColumns",
        __config__=ConfigDict(frozen=True, extra="forbid"),
        id=(ColumnName, "id"),
        **{name: (ColumnName | None, name) for name in ContactFields.model_fields},
    )


def _keys_as_text(value: object) -> object:
    """YAML reads ``1: lead`` or ``true: lead`` with a number or boolean key; the column's values
    are compared as text."""
    return {str(key): kind for key, kind in value.items()} if isinstance(value, dict) else value


class SourceMapping(BaseModel):
    """Which column holds each field, and what the type column's values stand for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: SourceColumns = SourceColumns()
    contact_types: Annotated[dict[str, str], BeforeValidator(_keys_as_text)] = {}

    def column_of(self) -> Mapping[str, str]:
        """Field name -> column, for the fields the table has."""
        return self._column_of

    @functools.cached_property  # read for every CDC event; the mapping is frozen
    def _column_of(self) -> dict[str, str]:
        return {name: column for name, column in self.columns.model_dump().items() if column is not None}

    @property
    def key_column(self) -> str:
        return str(self.column_of()["id"])

    def fields_of(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The row's values by field name: columns the row lacks are left out, the type column's
        value translated, numbers in a text field as text."""
        fields = {name: row[column] for name, column in self.column_of().items() if column in row}
        for name in TEXT_FIELDS:
            if isinstance(fields.get(name), int | float) and not isinstance(fields[name], bool):
                fields[name] = str(fields[name])
        kind = fields.get("contact_type")
        if kind is not None and str(kind) in self.contact_types:
            fields["contact_type"] = self.contact_types[str(kind)]
        return fields

    def problems_with_table(self, table: str, columns: Collection[str]) -> list[str]:
        """One line per mapped column that ``table`` (with ``columns``) does not have."""
        return [
            f"{name}: table {table} has no column {column!r}{_nearest(column, columns)}"
            f" (map it to another column, or to null if the table has none)"
            for name, column in self.column_of().items()
            if column not in columns
        ]


IDENTITY = SourceMapping()
"""Every field in the column of its own name: the mapping when none is configured."""


def load_source_mapping(path: Path) -> SourceMapping:
    """The mapping in ``path``; a ConfigError with one line per problem otherwise."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"source mapping {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"source mapping {path}: not YAML ({' '.join(str(exc).split())})") from None
    try:
        return SourceMapping.model_validate(document if document is not None else {})
    except ValidationError as exc:
        lines = [_problem(problem) for problem in exc.errors(include_input=False)]
        raise ConfigError("\n".join(f"source mapping {path}: {line}" for line in lines)) from None


def _problem(problem: Any) -> str:
    where = ".".join(str(part) for part in problem["loc"]) or "the file"
    if problem["type"] == "extra_forbidden" and problem["loc"][0] == "columns":
        name = str(problem["loc"][-1])
        return f"{where}: not a contact field{_nearest(name, FIELDS)} (fields: {', '.join(FIELDS)})"
    if problem["type"] == "extra_forbidden":
        return f"{where}: not a key of a source mapping (keys: {', '.join(SourceMapping.model_fields)})"
    return f"{where}: {problem['msg']}"


def _nearest(name: str, names: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""
