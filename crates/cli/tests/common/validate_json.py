#!/usr/bin/env python3
"""Validates JSON documents against bootproof's shipped schemas with an
independent validator (python3-jsonschema, Draft 2020-12).

usage: validate_json.py [--strict] SCHEMA=DOCUMENT...
       validate_json.py --check-schemas SCHEMA...

A DOCUMENT ending in .toml is read with tomllib. --strict also refuses
properties a schema does not name (unevaluatedProperties: false on every
object schema): the shipped schemas allow them so consumers survive added
fields, but bootproof's own output must be fully described by them, or the
schema has drifted from the code. Prints one line per problem; exit 1 when
there is one.
"""

import copy
import json
import sys
import tomllib

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match


def strict(schema):
    """The schema with unknown properties refused in every object schema."""
    schema = copy.deepcopy(schema)

    # A struct with a flattened enum is an object schema whose properties
    # continue in its oneOf branches: the refusal goes on the object, which
    # sees what the matching branch evaluated, and not on the branches.
    def walk(node, branch_of_object=False):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not branch_of_object
            ):
                node["unevaluatedProperties"] = False
            for k, v in node.items():
                if k in ("oneOf", "anyOf", "allOf") and "properties" in node:
                    for branch in v:
                        walk(branch, True)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def load(path):
    if path.endswith(".toml"):
        with open(path, "rb") as f:
            return tomllib.load(f)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    if argv and argv[0] == "--check-schemas":
        for path in argv[1:]:
            Draft202012Validator.check_schema(load(path))
        print(f"{len(argv) - 1} schemas are valid Draft 2020-12")
        return 0
    is_strict = bool(argv) and argv[0] == "--strict"
    pairs = argv[1:] if is_strict else argv
    problems = 0
    for pair in pairs:
        schema_path, doc_path = pair.split("=", 1)
        schema = load(schema_path)
        if is_strict:
            schema = strict(schema)
        validator = Draft202012Validator(schema)
        for error in sorted(validator.iter_errors(load(doc_path)), key=str):
            # For anyOf/oneOf, the branch that came closest says why.
            if error.context:
                error = best_match(error.context)
            where = "/".join(str(p) for p in error.absolute_path)
            print(f"{doc_path}: /{where}: {error.message[:400]}")
            problems += 1
    print(f"{len(pairs)} documents checked, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
