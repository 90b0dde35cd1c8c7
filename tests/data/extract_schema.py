"""Write the part of Heroku's Platform API schema that the tests validate against.

    python tests/data/extract_schema.py path/to/heroku-platform-api-schema.json

keeps the definitions named in ``USED_BY_TESTS`` and every definition they reach through
``$ref`` (anywhere inside them, links included, so the file holds no reference it cannot
resolve), and writes them to ``heroku-platform-api-schema.json`` beside this script with sorted
keys and an indent of 2, so the same input always gives the same file. Not run by the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

#: the definitions tests/ passes to ``schema.validate`` (grep "validate(" tests/)
USED_BY_TESTS = ("account", "account-feature", "add-on", "add-on-attachment", "add-on-service", "app", "app-feature",
                 "app-webhook-delivery", "collaborator", "domain", "dyno", "formation", "log-drain", "oauth-authorization",
                 "pipeline", "pipeline-coupling", "pipeline-promotion", "pipeline-promotion-target", "plan", "region",
                 "release", "review-app", "review-app-config", "slug", "stack")

#: the root keys kept besides ``definitions``: the ones that identify the schema and its dialect
#: (``links`` and ``properties`` describe the whole API's index and are left out)
ROOT_KEYS = ("$schema", "id", "title", "description")

OUTPUT = Path(__file__).resolve().with_name("heroku-platform-api-schema.json")
PREFIX = "#/definitions/"


def references(node: object) -> Iterator[str]:
    """Every ``$ref`` value inside ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def closure(definitions: dict, roots: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """The names reachable from ``roots``, and the names referred to that ``definitions`` lacks."""
    reached: set[str] = set()
    missing: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in reached or name in missing:
            continue
        if name not in definitions:
            missing.add(name)
            continue
        reached.add(name)
        for ref in references(definitions[name]):
            if not ref.startswith(PREFIX):
                raise SystemExit(f"{name}: $ref {ref!r} is not a local definition; extend this script")
            pending.append(ref[len(PREFIX):].split("/", 1)[0])
    return reached, missing


def extract(full: dict) -> tuple[dict, set[str]]:
    """The subset of ``full`` the tests need, and the dangling names found on the way."""
    kept, missing = closure(full["definitions"], USED_BY_TESTS)
    subset = {key: full[key] for key in ROOT_KEYS if key in full}
    subset["definitions"] = {name: full["definitions"][name] for name in sorted(kept)}
    return subset, missing


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    subset, missing = extract(json.loads(Path(argv[1]).read_text()))
    for name in sorted(missing):
        # Upstream has one (formation's dyno_size identity points at "dyno_size", not "dyno-size");
        # it sits under a keyword validation never follows, so it is reported and kept as it is.
        print(f"warning: $ref to #/definitions/{name}, which the full schema does not define either",
              file=sys.stderr)
    OUTPUT.write_text(json.dumps(subset, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"wrote {OUTPUT} ({len(subset['definitions'])} definitions: {', '.join(subset['definitions'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
