"""The JSON schemas and the registry copy shipped in scitags_core/data/."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

DATA_DIR = Path(__file__).resolve().parent / "data"
FIREFLY_SCHEMA_PATH = DATA_DIR / "firefly.schema.json"
REGISTRY_SCHEMA_PATH = DATA_DIR / "registry.schema.json"
DEFAULT_REGISTRY_PATH = DATA_DIR / "registry-2025-09-04.json"


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    # Formats (date-time, ipv4, ipv6) are assertions for us, not annotations.
    # date-time needs the rfc3339-validator package (see requirements).
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@functools.cache
def firefly_validator() -> jsonschema.protocols.Validator:
    """Full jsonschema validator for a firefly JSON document (slow path / tests)."""
    return _validator(_load(FIREFLY_SCHEMA_PATH))


@functools.cache
def registry_validator() -> jsonschema.protocols.Validator:
    return _validator(_load(REGISTRY_SCHEMA_PATH))


def date_time_format_checked() -> bool:
    """True when jsonschema can check `format: date-time` (rfc3339-validator installed)."""
    return "date-time" in jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
