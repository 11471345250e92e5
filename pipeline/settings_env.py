"""The settings' environment variables by name: which exist, which one a problem is about.

pydantic-settings reads only the variables of known fields, so a misspelt top-level variable
(``CONTACTSYNC_WEB_PROT``) would be ignored without a word: ``unknown_variables`` names each one with
the nearest valid name. A misspelt nested variable is refused by the sections' ``extra="forbid"``;
``nearest`` gives it a suggestion too.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Any, get_origin

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic_settings import SettingsError

from pipeline.settings import Settings

PREFIX = "CONTACTSYNC_"
DELIMITER = "__"


def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """Each alias a validation error may name, and the variables it stands for."""
    choices = [field.validation_alias.choices for field in model.model_fields.values()
               if isinstance(field.validation_alias, AliasChoices)]
    return {str(names[0]): " or ".join(str(name) for name in reversed(names)) for names in choices}


def _names(model: type[BaseModel], prefix: str) -> tuple[list[str], list[str]]:
    """(every variable that sets a field of ``model``, the ones that also take nested variables)."""
    names: list[str] = []
    sections: list[str] = []
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names += [choice for choice in alias.choices if isinstance(choice, str)]
            continue
        variable = f"{prefix}{field_name.upper()}"
        names.append(variable)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            sections.append(variable)
            nested, nested_sections = _names(kind, variable + DELIMITER)
            names += nested
            sections += nested_sections
        elif get_origin(kind) is dict:
            sections.append(variable)
    return names, sections


VARIABLES, SECTIONS = _names(Settings, PREFIX)
ALIASES = _aliases(Settings)


def nearest(variable: str) -> str:
    """`` (did you mean X?)`` for the setting nearest to ``variable`` (compared without the prefix
    they all share), or where to find them when none is near."""
    names = {name.removeprefix(PREFIX): name for name in VARIABLES}
    close = difflib.get_close_matches(variable.upper().removeprefix(PREFIX), names, n=1)
    if close:
        return f" (did you mean {names[close[0]]}?)"
    return " (no setting has a name like it; see docs/configuration.md)"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``CONTACTSYNC_`` variable that no setting reads."""
    return [
        f"{name} is not a setting and is ignored{nearest(name)}"
        for name in sorted(environ)
        if name.upper().startswith(PREFIX)
        and name.upper() not in VARIABLES
        and not name.upper().startswith(tuple(section + DELIMITER for section in SECTIONS))
    ]


def validation_problems(error: ValidationError) -> str:
    """Each problem as ``VARIABLE: why``, on one line (values are left out: they may be secrets)."""
    return "; ".join(_problem(problem) for problem in error.errors(include_input=False))


def _problem(problem: Any) -> str:
    loc = [str(part) for part in problem["loc"]]
    if loc[0] in ALIASES:
        variable = ALIASES[loc[0]]
    else:
        variable = PREFIX + DELIMITER.join(part.upper() for part in loc)
    if problem["type"] == "extra_forbidden":
        return f"{variable}: not a setting{nearest(variable)}"
    return f"{variable}: {problem['msg'].removeprefix('Value error, ')}"


def json_problem(error: SettingsError, environ: Mapping[str, str]) -> str:
    """Which variable did not decode as JSON, and why (pydantic-settings names only the section)."""
    cause = error.__cause__
    if not isinstance(cause, json.JSONDecodeError):
        return str(error)
    variables = [
        name for name, value in sorted(environ.items()) if value == cause.doc and name.upper().startswith(PREFIX)
    ]
    return (
        f"{' and '.join(variables) or 'a variable'}: not valid JSON ({cause.msg}, column {cause.colno}); "
        'lists and maps are JSON, e.g. ["email"] or {"lead": ["salesforce"]}'
    )
