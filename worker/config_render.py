"""The configuration shown to people: masked, as TOML, as the key table, and the group's budget."""
from __future__ import annotations

import json
from typing import Any

from sidepath.core.masking import is_secret_key, mask_url
from sidepath.worker.config_model import LEAVES, SECRET_KEYS, Config, env_name, type_name


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as a dict with every secret replaced by ``***``."""
    d = cfg.to_dict()
    for key in SECRET_KEYS:
        section, name = key.split(".")
        if d[section][name]:
            d[section][name] = "***"
    d["sinks"]["urls"] = [mask_url(u) for u in d["sinks"]["urls"]]
    d["sinks"]["dead_letter"] = mask_url(d["sinks"]["dead_letter"])
    d["kafka"]["consumer"] = {k: ("***" if is_secret_key(k) else v) for k, v in d["kafka"]["consumer"].items()}
    return d


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))


def to_toml(doc: dict[str, Any]) -> str:
    """The (masked) config dict as TOML, for ``config show --format toml``."""
    lines: list[str] = []

    def section(d: dict[str, Any], prefix: str) -> None:
        lines.append(f"[{prefix}]")
        nested = []
        for k, v in d.items():
            if f"{prefix}.{k}" in LEAVES:
                lines.append(f"{k} = {_toml_value(v)}")
            else:
                nested.append((k, v))
        lines.append("")
        for k, v in nested:
            section(v, f"{prefix}.{k}")

    for k, v in doc.items():
        section(v, k)
    return "\n".join(lines)


def group_budget(cfg: Config) -> dict[str, Any]:
    """The budget of the whole group: each worker's budget times the replicas that may run.

    Budgets are per worker (each pod paces itself; nothing is shared between pods), so the group
    may consume up to ``max_*_per_s x replicas``; with an autoscaler use its maxReplicas."""
    r = cfg.deploy.replicas
    replicas = {"hk": r.hk, "eu": r.eu, "na": r.na}
    region = cfg.service.region
    n = replicas.get(region, sum(replicas.values()))
    where = f"deploy.replicas.{region}" if region in replicas else "all regions' deploy.replicas"
    out: dict[str, Any] = {"replicas": n, "replicas_from": where}
    parts = []
    for key, unit in (("max_messages_per_s", "messages/s"), ("max_bytes_per_s", "bytes/s")):
        per = getattr(cfg.engine, key)
        out[key] = per * n if per else None
        if per:
            parts.append(f"{per:g} {unit} x {n} replicas = {per * n:g} {unit}")
    out["note"] = ("; ".join(parts) + f" ({where}; with an autoscaler multiply by its maxReplicas)") if parts \
        else "no budget (engine.max_messages_per_s and engine.max_bytes_per_s are 0)"
    return out


def describe_keys() -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, environment variable, meaning) for every config key."""
    defaults = Config().to_dict()
    out = []
    for key, info in LEAVES.items():
        value: Any = defaults
        for part in key.split("."):
            value = value[part]
        default = "(secret: env only)" if key in SECRET_KEYS else _toml_value(value)
        out.append((key, type_name(key), default, env_name(key), info.description or ""))
    return out
