#!/usr/bin/env python3
"""Validate an OpenLineage run event against the official JSON Schemas, offline.

Usage: validate_openlineage.py EVENT.json SCHEMA_DIR

SCHEMA_DIR holds OpenLineage.json and ColumnLineageDatasetFacet.json as the
OpenLineage project publishes them; their `$id`s are served from there, so
no schema is fetched. Every facet that names a `_schemaURL` is validated
against the definition it names. Prints each error and exits 1 on any.
"""
import json
import sys
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource


def main() -> int:
    event = json.loads(Path(sys.argv[1]).read_text())
    schema_dir = Path(sys.argv[2])
    resources = []
    for f in sorted(schema_dir.glob("*.json")):
        doc = json.loads(f.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    errors = []

    def check(instance, ref, where):
        validator = Draft202012Validator({"$ref": ref}, registry=registry)
        for e in validator.iter_errors(instance):
            errors.append(f"{where}: {e.message} (at {list(e.absolute_path)})")

    check(event, event["schemaURL"], "event")
    for kind in ("inputs", "outputs"):
        for i, ds in enumerate(event.get(kind, [])):
            for name, facet in ds.get("facets", {}).items():
                url = facet.get("_schemaURL", "")
                if "#" not in url:
                    errors.append(f"{kind}[{i}].facets.{name}: _schemaURL {url!r} names no definition (#/$defs/...)")
                    continue
                check(facet, url, f"{kind}[{i}].facets.{name}")
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
