"""The source mapping file: the table's column for each contact field, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.stages.source_mapping import IDENTITY, load_source_mapping


def test_the_shipped_mapping_is_the_identity() -> None:
    """pipeline/mappings/source.yaml reads every field from the column of its own name."""
    assert load_source_mapping(Settings().source.mapping) == IDENTITY


def test_every_problem_of_a_mapping_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "source.yaml"
    path.write_text("columns: {emial: email_address, id: null, title: ''}\ncontact_types: {1: lead}\ntable: x\n")
    with pytest.raises(ConfigError) as raised:
        load_source_mapping(path)
    lines = str(raised.value).splitlines()
    assert len(lines) == 4 and all(line.startswith(f"source mapping {path}: ") for line in lines)
    assert any("columns.emial: not a contact field (did you mean 'email'?)" in line for line in lines)
    assert any("columns.id:" in line for line in lines) and any("columns.title:" in line for line in lines)
    assert any("table: not a key of a source mapping" in line for line in lines)


def test_a_missing_or_broken_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No such file"):
        load_source_mapping(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("columns: [")
    with pytest.raises(ConfigError, match="not YAML"):
        load_source_mapping(tmp_path / "bad.yaml")


def test_type_values_are_compared_as_text_and_mapped_columns_checked_against_the_table(tmp_path: Path) -> None:
    path = tmp_path / "source.yaml"
    path.write_text("columns: {contact_type: kind, email: email_address, phone: null}\ncontact_types: {1: lead}\n")
    mapping = load_source_mapping(path)
    assert mapping.fields_of({"id": 9, "kind": 1, "email_address": "a@b.co"}) == {
        "id": 9, "email": "a@b.co", "contact_type": "lead",
    }
    columns = {"id", "kind", "email", "first_name", "last_name", "company", "title", "subscribed", "do_not_sync"}
    assert mapping.problems_with_table("public.people", columns) == [
        "email: table public.people has no column 'email_address' (map it to another column, or to null "
        "if the table has none)"
    ]
