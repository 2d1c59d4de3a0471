"""The chart's schema for ``config.*``, generated from the worker's config model (worker/config_model.py).

Every section is closed (``additionalProperties: false``), so a typo in the values fails
``helm install`` with the key's path instead of a pod crash-looping on "unknown key".  Each
key's type, allowed values, limits and description are the model's own; only what the chart
adds (required keys, a real port) is here.  Regenerate after changing a config key:

    python -m sidepath.worker.config_schema --write
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sidepath.worker.config_model import LEAVES, Config

__all__ = ["config_schema", "SCHEMA_PATH"]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "charts" / "sidepath" / "values.schema.json"

#: sections the chart sets itself (deploy.* comes from gpu/resources/replicas values)
_CHART_OWNED = {"deploy"}
#: what a key's JSON Schema may say in the chart (pydantic's title and default are left out)
_KEPT = ("type", "enum", "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "minLength", "pattern",
         "minItems", "items", "description")
#: the chart's own demands beyond the worker's
_CHART_CONSTRAINTS: dict[str, dict[str, Any]] = {"metrics.port": {"minimum": 1}}     # the chart needs a real port
_REQUIRED = {"": ["kafka", "sinks"], "kafka": ["bootstrap_servers", "topic"], "sinks": ["urls"]}


def _property_schemas() -> dict[str, dict[str, Any]]:
    """Dotted key -> that key's JSON Schema, as pydantic writes it for the model."""
    full = Config.model_json_schema()
    out: dict[str, dict[str, Any]] = {}
    for section_name, ref in full["properties"].items():
        section = full["$defs"][ref["$ref"].rpartition("/")[2]]
        for name, prop in section["properties"].items():
            out[f"{section_name}.{name}"] = prop
    return out


def config_schema() -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {}
    props = _property_schemas()
    for key in LEAVES:
        section, _, name = key.partition(".")
        if section in _CHART_OWNED:
            continue
        prop = {k: v for k, v in props[key].items() if k in _KEPT}
        prop.update(_CHART_CONSTRAINTS.get(key, {}))
        sec = sections.setdefault(section, {"type": "object", "additionalProperties": False, "properties": {}})
        sec["properties"][name] = prop
    for section, required in _REQUIRED.items():
        if section:
            sections[section]["required"] = required
    return {"description": "sidepath.toml without its deploy section; generated from worker/config_model.py by "
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
