"""Load the JSON Schemas in schemas/ and check data against them.

The schemas are the one description of the manifest, record and row shapes. This module checks
the subset of JSON Schema they use: type, properties, required, additionalProperties, items,
enum, minItems, minimum.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any

from builder import PROJECT_ROOT

SCHEMA_DIR = PROJECT_ROOT / "schemas"

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema `schemas/<name>.schema.json`."""
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def _type_ok(value: Any, types: str | list[str]) -> bool:
    for t in [types] if isinstance(types, str) else types:
        if isinstance(value, bool) and t in ("integer", "number"):
            continue
        if isinstance(value, _TYPES[t]):
            return True
    return False


def problems(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every way `value` departs from `schema`, each as 'path: message'; empty when it conforms."""
    where = path or "(top level)"
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{where}: expected {schema['type']}, got {type(value).__name__} {value!r:.60}"]
    found: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        found.append(f"{where}: {value!r} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{where}: missing required field '{key}'")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if key in props:
                found += problems(item, props[key], sub)
            elif extra is False:
                close = difflib.get_close_matches(str(key), list(props), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                found.append(f"{sub}: unknown field{hint}")
            elif isinstance(extra, dict):
                found += problems(item, extra, sub)
    if isinstance(value, (list, tuple)):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{where}: needs at least {schema['minItems']} items, has {len(value)}")
        if "items" in schema:
            for i, item in enumerate(value):
                found += problems(item, schema["items"], f"{path}[{i}]")
    return found


def check_file_data(data: Any, schema_name: str, source: Path | str) -> list[str]:
    """Problems of `data` read from `source`, each prefixed with the file name."""
    return [f"{source}: {p}" for p in problems(data, load_schema(schema_name))]
