"""The JSON Schema (draft 2020-12) of everything ``fusion ... --format json`` prints.

``report.schema.json`` describes the envelope, the reports, error entries and the error
object; it is versioned with ``schema_version`` and ships inside the package
(``fusion schema`` prints it). Torch-free.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMA_FILE = "report.schema.json"


def schema_text() -> str:
    return resources.files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    return json.loads(schema_text())


__all__ = ["SCHEMA_FILE", "load_schema", "schema_text"]
