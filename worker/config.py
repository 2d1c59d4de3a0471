"""Configuration: one TOML file, environment overrides for every key, validation.

``load_config(path)`` reads ``sidepath.toml`` (every key optional), then applies
``SIDEPATH_<SECTION>_<KEY>`` environment variables (``SIDEPATH_KAFKA_TOPIC``,
``SIDEPATH_DEPLOY_REPLICAS_HK`` ...) and the command's own options, then validates the result
against the one typed model (worker/config_model.py).  Errors are ``ConfigError`` naming the
key, the bad value and the fix, on one line.  Secrets (SASL and database passwords) are read
from the environment only; a secret found in the file is refused so that it never lands in a
repository.

pydantic-settings was weighed for the sources and left out: its environment source splits
``SIDEPATH_KAFKA_BOOTSTRAP_SERVERS`` at every ``_`` and then ignores it without a word, and it
takes lists as JSON only; the few lines below read the file and the variables by the model's
own keys (docs/configuration.md, "How it is built").
"""
from __future__ import annotations

import difflib
import json
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url
from sidepath.worker.config_model import (
    LEAVES,
    SECRET_KEYS,
    Config,
    DecodeConfig,
    EngineConfig,
    env_name,
    type_name,
)
from sidepath.worker.config_render import describe_keys, group_budget, masked, to_toml

__all__ = ["Config", "load_config", "env_name", "masked", "to_toml", "describe_keys", "group_budget",
           "EngineConfig", "DecodeConfig"]

#: librdkafka settings that hold credentials: like the SECRET_KEYS, never in a file
LIBRDKAFKA_SECRETS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                      "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config")
_SECTIONS = {key.rpartition(".")[0] for key in LEAVES} | {""}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
          "dict": "a table"}


def _refuse_secrets(flat: dict[str, Any], source: str) -> None:
    for key in SECRET_KEYS:
        if flat.get(key):
            raise ConfigError(key, "***", f"secrets never go in {source}; set {env_name(key)} instead")
    consumer = flat.get("kafka.consumer")
    for name, value in (consumer.items() if isinstance(consumer, dict) else ()):
        lowered = str(name).strip().lower()
        if value and (lowered in LIBRDKAFKA_SECRETS or "password" in lowered or "secret" in lowered):
            hint = {"sasl.password": env_name("kafka.sasl_password"),
                    "ssl.key.password": env_name("kafka.ssl_key_password")}.get(lowered)
            fix = f"set {hint} instead" if hint else \
                f"set it in the environment, in {env_name('kafka.consumer')} (the whole table as JSON)"
            raise ConfigError(f"kafka.consumer.{name}", "***", f"secrets never go in {source}; {fix}")


def _flatten(doc: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """``{"kafka": {"topic": "a"}}`` -> ``{"kafka.topic": "a"}``; an unknown key is an error naming ``source``."""
    flat: dict[str, Any] = {}
    for name, value in doc.items():
        key = f"{prefix}{name}"
        if key in LEAVES:
            flat[key] = value
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(key, value, f"expected a table of keys; use a [{key}] section")
            flat.update(_flatten(value, source, key + "."))
        else:
            near = difflib.get_close_matches(key, [*LEAVES, *_SECTIONS], n=3)
            known = near or sorted(k for k in LEAVES if k.startswith(prefix))[:6]
            raise ConfigError(key, value, f"unknown key in {source}; "
                              f"{'did you mean' if near else 'known keys here:'} {', '.join(known)}")
    return flat


def _from_env(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    """The ``SIDEPATH_<SECTION>_<KEY>`` variables that are set; lists take JSON or a, b; tables JSON."""
    flat: dict[str, Any] = {}
    for key in LEAVES:
        raw = environ.get(env_name(key))
        if raw is None:
            continue
        kind = type_name(key)
        if kind == "list" and not raw.strip().startswith("["):
            flat[key] = [v.strip() for v in raw.split(",") if v.strip()]
        elif kind in ("list", "dict"):
            try:
                flat[key] = json.loads(raw)
            except json.JSONDecodeError:
                flat[key] = raw             # the model says what it expected
        else:
            flat[key] = raw
    return flat


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *head, last = key.split(".")
        d = nested
        for part in head:
            d = d.setdefault(part, {})
        d[last] = value
    return nested


def _error(err: ErrorDetails, flat: dict[str, Any], from_env: set[str]) -> ConfigError:
    """pydantic's first error as one line: the key, its value as given, the fix."""
    parts = [str(p) for p in err["loc"]]
    key = next((k for k in (".".join(parts[:n]) for n in range(len(parts), 0, -1)) if k in LEAVES), ".".join(parts))
    value = flat.get(key, err["input"])
    ctx = {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in err.get("ctx", {}).items()}
    bound = {"greater_than": "must be greater than {gt}", "greater_than_equal": "must be {ge} or more",
             "less_than": "must be less than {lt}", "less_than_equal": "must be {le} or less"}.get(err["type"])
    if key not in LEAVES:                       # not expected: _flatten has placed every value on a key
        fix = err["msg"]
    elif err["type"] == "value_error":
        fix = str(ctx["error"]).replace("{env}", env_name(key))
    elif bound:
        fix = bound.format(**ctx) + (f" ({LEAVES[key].description})" if LEAVES[key].description else "")
    else:
        word = _WORDS[type_name(key)]
        fix = f"expected {word}; " + (f"set {env_name(key)} to {word}" if key in from_env else f"use {word}")
        if key in from_env and type_name(key) in ("list", "dict"):
            fix += " (JSON" + (" or comma-separated)" if type_name(key) == "list" else ")")
    return ConfigError(key, value, fix)


def _check_exactly_once(urls: list[str], bootstrap: str) -> None:
    """A Kafka transaction covers one cluster: the result topics must live where the offsets are."""
    from sidepath.sinks.kafka import producer_config_of_url  # lazy: confluent_kafka only when exactly-once is checked

    source = {h.strip() for h in bootstrap.split(",") if h.strip()}
    for url in urls:
        if not url.startswith("kafka://"):
            raise ConfigError("sinks.urls", mask_url(url), "exactly-once writes results in Kafka transactions: "
                              "use only kafka:// result sinks, or set sinks.exactly_once = false")
        settings, _topic, _timeout = producer_config_of_url(url, key="sinks.urls")
        if set(settings["bootstrap.servers"].split(",")) != source:
            raise ConfigError("sinks.urls", mask_url(url), "exactly-once needs the result topics on the source "
                              f"cluster: use the hosts of kafka.bootstrap_servers ({bootstrap}) in the URL")


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(p.read_bytes().decode("utf-8"))
    except IsADirectoryError:
        raise ConfigError("--config", str(p), "is a directory; pass a TOML file") from None
    except OSError as exc:
        raise ConfigError("--config", str(p), f"cannot be read ({exc.strerror}); check its permissions") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("file", str(p), f"not UTF-8 text (byte {exc.start}); a TOML file is UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("file", str(p), f"not valid TOML ({exc}); fix the syntax") from None


def load_config(path: str | os.PathLike[str] | None = None, *,
                environ: typing.Mapping[str, str] | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Read the file (if it exists), apply env and explicit overrides, validate."""
    environ = os.environ if environ is None else environ
    flat: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if p.exists():
            flat = _flatten(_read_toml(p), str(p))
            _refuse_secrets(flat, str(p))
        elif str(path) != "sidepath.toml":
            raise ConfigError("--config", str(p), "file not found; pass an existing TOML file")
    env = _from_env(environ)
    flat.update(env)
    if overrides:
        given = _flatten(_nest(overrides), "command-line options")
        _refuse_secrets(given, "command-line options")
        flat.update(given)
    try:
        cfg = Config.model_validate(_nest(flat))
    except ValidationError as exc:
        raise _error(exc.errors()[0], flat, set(env) - set(overrides or ())) from None
    if cfg.sinks.exactly_once:
        _check_exactly_once(cfg.sinks.urls, cfg.kafka.bootstrap_servers)
    return cfg
