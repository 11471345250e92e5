"""The one SOQL shape the simulator answers: ``SELECT f[, ...] FROM Obj WHERE Field IN ('a', ...)``
(or ``WHERE Field = 'a'``). Anything else is ``MALFORMED_QUERY``, as a real org would say for
a query it cannot parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.simulators.base import RejectedRequest

_LITERAL = r"'(?:[^'\\]|\\.)*'"
_QUERY = re.compile(
    rf"""^\s*SELECT\s+(?P<fields>\w+(?:\s*,\s*\w+)*)
         \s+FROM\s+(?P<sobject>\w+)
         \s+WHERE\s+(?P<field>\w+)\s*
         (?:IN\s*\(\s*(?P<values>{_LITERAL}(?:\s*,\s*{_LITERAL})*)\s*\)|=\s*(?P<value>{_LITERAL}))\s*$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class LookupQuery:
    fields: tuple[str, ...]
    sobject: str
    where_field: str
    values: tuple[str, ...]


def parse_lookup(query: str) -> LookupQuery:
    """The parts of a lookup query, or ``RejectedRequest`` 400 ``MALFORMED_QUERY``."""
    match = _QUERY.match(query)
    if match is None:
        raise RejectedRequest(400, f"unexpected token in query: {query[:80]}", code="MALFORMED_QUERY")
    literals = match["values"] or match["value"]
    values = tuple(_unquote(literal) for literal in re.findall(_LITERAL, literals))
    fields = tuple(name.strip() for name in match["fields"].split(","))
    return LookupQuery(fields, match["sobject"], match["field"], values)


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])
