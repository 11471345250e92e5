"""Plain-text tables for the commands: columns padded to their widest cell, numbers on the right."""

from __future__ import annotations

from collections.abc import Sequence

_BLANKS = ("", "-")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Lines of a table; a column of numbers (or blanks, ``-``) is right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)]
    numeric = [
        any(isinstance(row[i], int | float) for row in rows)
        and all(isinstance(row[i], int | float) or row[i] in _BLANKS for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True))
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(row) for row in cells)]
