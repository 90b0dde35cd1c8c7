"""Validate gitpaas's JSON against the Heroku Platform API schema (the part kept in tests/data).

The schema is draft-04 hyper-schema plus Heroku's ``strictProperties`` keyword (no property
outside ``properties``), which plain jsonschema ignores: it is enforced here too.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema
from jsonschema import validators

#: the definitions the tests use, extracted from Heroku's full schema (see tests/data/README.md)
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "heroku-platform-api-schema.json"


def _strict_properties(validator, strict, instance, schema):
    if strict and validator.is_type(instance, "object"):
        extra = sorted(set(instance) - set(schema.get("properties", {})))
        if extra:
            yield jsonschema.ValidationError(f"properties not in the schema: {extra}")


StrictDraft4 = validators.extend(jsonschema.Draft4Validator, {"strictProperties": _strict_properties})


#: patterns that pin Heroku's own hosts (git.heroku.com, herokuapp.com): a gitpaas server has its own
HEROKU_HOST_PATTERNS = (("app", "git_url"), ("app", "web_url"))


@lru_cache(maxsize=1)
def schema() -> dict:
    loaded = json.loads(SCHEMA_PATH.read_text())
    for definition, field in HEROKU_HOST_PATTERNS:
        loaded["definitions"][definition]["definitions"][field].pop("pattern", None)
    return loaded


def validate(definition: str, instance: dict, *, require_all: bool = True) -> None:
    """Raise ValidationError unless ``instance`` is a valid ``definition`` (e.g. "release")."""
    root = schema()
    StrictDraft4({**root, "$ref": f"#/definitions/{definition}"},
                 format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER).validate(instance)
    if require_all:
        missing = sorted(set(root["definitions"][definition]["properties"]) - set(instance))
        if missing:
            raise jsonschema.ValidationError(f"{definition} lacks properties: {missing}")
