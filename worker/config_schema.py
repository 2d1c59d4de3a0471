"""The chart's schema for ``config.*``, derived from the worker's own keys (``sidepath config keys``).

Every section is closed (``additionalProperties: false``), so a typo in the values fails
``helm install`` with the key's path instead of a pod crash-looping on "unknown key".  The
types come from worker/config.py; the few constraints a type cannot say are in
``_CONSTRAINTS``.  Regenerate after adding a config key:

    python -m sidepath.worker.config_schema --write
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sidepath.worker.config import _CHOICES, describe_keys

__all__ = ["config_schema", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "charts" / "sidepath" / "values.schema.json"

_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}
#: sections the chart sets itself (deploy.* comes from gpu/resources/replicas values)
_CHART_OWNED = {"deploy"}
_HOST_PORTS = r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]+(,[A-Za-z0-9_.\-\[\]:]+:[0-9]+)*$"
_CONSTRAINTS: dict[str, dict[str, Any]] = {
    "kafka.bootstrap_servers": {"minLength": 1, "pattern": _HOST_PORTS},
    "kafka.topic": {"minLength": 1},
    "kafka.group_id": {"minLength": 1},
    "sinks.urls": {"minItems": 1, "items": {"type": "string", "minLength": 1}},
    "engine.shutdown_grace_s": {"minimum": 0},
    "engine.close_timeout_s": {"minimum": 0},
    "decode.threads": {"minimum": 0},
    "metrics.port": {"minimum": 1, "maximum": 65535},
}
_REQUIRED = {"": ["kafka", "sinks"], "kafka": ["bootstrap_servers", "topic"], "sinks": ["urls"]}


def config_schema() -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {}
    for key, typ, _default, _env in describe_keys():
        section, _, name = key.partition(".")
        if section in _CHART_OWNED:
            continue
        prop: dict[str, Any] = {"type": _TYPES[typ]}
        if key in _CHOICES:
            prop = {"enum": list(_CHOICES[key])}
        prop.update(_CONSTRAINTS.get(key, {}))
        sec = sections.setdefault(section, {"type": "object", "additionalProperties": False, "properties": {}})
        sec["properties"][name] = prop
    for section, required in _REQUIRED.items():
        if section:
            sections[section]["required"] = required
    return {"description": "sidepath.toml without its deploy section; generated from worker/config.py by "
                           "python -m sidepath.worker.config_schema --write.",
            "type": "object", "additionalProperties": False, "required": _REQUIRED[""], "properties": sections}


def main(argv: list[str]) -> int:
    schema = json.loads(SCHEMA_PATH.read_text())
    schema["properties"]["config"] = config_schema()
    text = json.dumps(schema, indent=2) + "\n"
    if "--write" in argv:
        SCHEMA_PATH.write_text(text)
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
