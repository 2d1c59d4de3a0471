"""Configuration: one TOML file, environment overrides for every key, validation.

``load_config(path)`` reads ``sidepath.toml`` (every key optional), then applies
``SIDEPATH_<SECTION>_<KEY>`` environment variables (``SIDEPATH_KAFKA_TOPIC``,
``SIDEPATH_DEPLOY_REPLICAS_HK`` ...), then validates.  Errors are
``ConfigError`` naming the key, the bad value and the fix.  Secrets (SASL and
database passwords) are read from the environment only; a secret found in the
file is refused so that it never lands in a repository.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidepath.core.errors import ConfigError
from sidepath.core.masking import is_secret_key, mask_url
from sidepath.core.run_window import parse_run_window
from sidepath.models.batching import BATCH_TUNING
from sidepath.models.precisions import PRECISIONS

__all__ = ["Config", "load_config", "env_name", "masked", "to_toml", "describe_keys",
           "group_budget"]

ENV_PREFIX = "SIDEPATH_"
SECRET_KEYS = {"kafka.sasl_password", "kafka.ssl_key_password"}


@dataclass
class ServiceConfig:
    name: str = "sidepath"
    team: str = "ml"
    namespace: str = "sidepath"
    #: the region this worker runs in (hk | eu | na ...); part of the default Kafka client.id
    region: str = ""


@dataclass
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "posts"
    group_id: str = "sidepath"
    auto_offset_reset: str = "earliest"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""          # from SIDEPATH_KAFKA_SASL_PASSWORD only
    ssl_ca_location: str = ""
    ssl_key_password: str = ""       # from SIDEPATH_KAFKA_SSL_KEY_PASSWORD only
    session_timeout_ms: int = 45000
    max_poll_interval_ms: int = 300000
    #: the client.id brokers see, stable across pods so that a quota can be set on it;
    #: "" = <service.name>-<service.region> (or <service.name> without a region)
    client_id: str = ""
    #: librdkafka statistics every this many ms (broker throttle time as a metric); 0 = off
    statistics_interval_ms: int = 5000
    #: static group membership (group.instance.id): a restarted pod reclaims its partitions without a
    #: rebalance if it is back within session_timeout_ms; "" = dynamic membership (the chart sets the pod name)
    group_instance_id: str = ""
    #: extra librdkafka consumer settings, e.g. {"fetch.max.bytes" = "1048576"}
    consumer: dict[str, str] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "fingerprint"
    options: dict[str, Any] = field(default_factory=dict)
    #: further models over the same decoded items (decode once)
    extra: list[str] = field(default_factory=list)
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    precision: str = "auto"         # auto | fp32 | fp16 | bf16
    max_batch: int = 32
    #: measure at warm-up the batch size the network runs fastest at: auto (CPU only) | on | off
    batch_tuning: str = "auto"
    max_wait_ms: int = 20
    instances: int = 1


@dataclass
class DecodeConfig:
    threads: int = 0                # 0: the container's usable CPUs less 2 (worker/engine/cpus.py), said at start
    fps: float = 1.0
    max_frames: int = 32
    video_mode: str = "exact"
    hwaccel: str = "none"           # none | cuda | auto: decode video on NVDEC (docs/decoders.md)
    max_bytes: int = 256 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_duration_s: float = 3600.0
    timeout_s: float = 15.0
    retries: int = 3
    allow_hosts: list[str] = field(default_factory=list)
    allow_private: bool = False
    file_roots: list[str] = field(default_factory=list)
    #: politeness per media host (0 = no cap): concurrent connections, requests per second
    max_connections_per_host: int = 8
    max_requests_per_s_per_host: float = 0.0


@dataclass
class SinksConfig:
    urls: list[str] = field(default_factory=lambda: ["file://./var/results.jsonl", "sqlite:///./var/results.db"])
    dead_letter: str = "file://./var/dead-letters.jsonl"
    batch_size: int = 200
    batch_wait_ms: int = 0        # 0: write whatever is queued as soon as the last write is done
    retry_deadline_s: float = 600.0
    #: results and source offsets in one Kafka transaction (kafka:// result sinks on the source cluster)
    exactly_once: bool = False
    transactional_id: str = ""    # exactly-once producer id; "" = sidepath-<group>-<host>-<pid>


@dataclass
class EngineConfig:
    max_inflight_messages: int = 512
    max_inflight_bytes: int = 512 * 1024 * 1024
    resume_fraction: float = 0.5
    commit_interval_s: float = 5.0
    commit_every: int = 1000
    shutdown_grace_s: float = 25.0
    revoke_budget_s: float = 10.0
    pause_after_s: float = 1.0         # at a cap this long: pause the partitions (else just stop taking)
    close_timeout_s: float = 10.0      # leaving the group may take this long at shutdown
    consume_batch: int = 500           # messages per consume() call at most
    #: budgets per worker (token buckets; 0 = none); the group's budget is these x the replicas
    max_messages_per_s: float = 0.0
    max_bytes_per_s: float = 0.0
    #: consume only inside these daily windows, e.g. ["22:00-06:00 Asia/Shanghai"]; [] = always
    run_window: list[str] = field(default_factory=list)
    #: a message in flight alone at this many crashes is dead-lettered (docs/reliability.md); 0 = off
    max_crashes: int = 2


@dataclass
class LiveConfig:
    """The live (human-review) pipeline this worker steps back for (docs/operations.md)."""

    group_id: str = ""                 # its consumer group; "" = never yield
    topic: str = ""                    # the topic that group reads; "" = kafka.topic
    max_lag: int = 10000               # yield while that group's lag is above this
    resume_lag: int = 1000             # and consume again once it is at or below this
    check_interval_s: float = 5.0


@dataclass
class MetricsConfig:
    port: int = 9108
    #: the health/metrics port's bind address: loopback for a dev machine, the pod IP in the chart
    host: str = "127.0.0.1"
    read_timeout_s: float = 10.0       # per connection, to send its request
    max_connections: int = 32          # open at once; at the cap the oldest half-sent one is closed
    ping_timeout_s: float = 30.0
    stall_after_s: float = 300.0
    lag_interval_s: float = 5.0


@dataclass
class ReplicasConfig:
    hk: int = 1
    eu: int = 1
    na: int = 1


@dataclass
class DeployConfig:
    cpu: str = "8"
    memory: str = "16Gi"
    gpu_memory: str = "16Gi"
    init_delay_seconds: int = 60
    replicas: ReplicasConfig = field(default_factory=ReplicasConfig)


@dataclass
class Config:
    service: ServiceConfig = field(default_factory=ServiceConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    sinks: SinksConfig = field(default_factory=SinksConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def env_name(key: str) -> str:
    """``kafka.bootstrap_servers`` -> ``SIDEPATH_KAFKA_BOOTSTRAP_SERVERS``."""
    return ENV_PREFIX + key.upper().replace(".", "_")


def _fields(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, str, Any]]:
    """Yield (dotted key, owner object, field name, type) for every leaf."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from _fields(value, key + ".")
        else:
            yield key, obj, f.name, hints[f.name]


def _coerce(key: str, value: Any, typ: Any, *, from_env: bool) -> Any:
    origin = typing.get_origin(typ) or typ
    try:
        if origin is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise ValueError
        if origin is int:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if origin is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if origin is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if origin is list:
            if from_env and isinstance(value, str):
                value = json.loads(value) if value.strip().startswith("[") else \
                    [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError
            return [str(v) for v in value]
        if origin is dict:
            if from_env and isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError
            return dict(value)
    except (ValueError, TypeError):
        pass
    else:
        return value
    name = getattr(origin, "__name__", str(origin))
    how = f"set {env_name(key)} to a {name}" if from_env else f"use a {name}"
    if origin in (list, dict) and from_env:
        how += " (JSON" + (" or comma-separated)" if origin is list else ")")
    raise ConfigError(key, value, f"expected a {name}; {how}")


#: librdkafka settings that hold credentials: like the SECRET_KEYS, never in a file
LIBRDKAFKA_SECRETS = ("sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem",
                      "sasl.oauthbearer.client.secret", "sasl.oauthbearer.config")


def _refuse_librdkafka_secrets(settings: dict[str, Any], source: str) -> None:
    for name, value in settings.items():
        lowered = str(name).strip().lower()
        if value and (lowered in LIBRDKAFKA_SECRETS or "password" in lowered or "secret" in lowered):
            hint = {"sasl.password": env_name("kafka.sasl_password"),
                    "ssl.key.password": env_name("kafka.ssl_key_password")}.get(lowered)
            fix = f"set {hint} instead" if hint else \
                f"set it in the environment, in {env_name('kafka.consumer')} (the whole table as JSON)"
            raise ConfigError(f"kafka.consumer.{name}", "***", f"secrets never go in {source}; {fix}")


def _apply(cfg: Config, doc: dict[str, Any], *, source: str) -> None:
    leaves = {key: (owner, name, typ) for key, owner, name, typ in _fields(cfg)}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if key in leaves:
                if key in SECRET_KEYS and v:
                    raise ConfigError(key, "***", f"secrets never go in {source}; set {env_name(key)} instead")
                if key == "kafka.consumer" and isinstance(v, dict):
                    _refuse_librdkafka_secrets(v, source)
                owner, name, typ = leaves[key]
                setattr(owner, name, _coerce(key, v, typ, from_env=False))
            elif isinstance(v, dict) and any(lk.startswith(key + ".") for lk in leaves):
                walk(v, key + ".")
            else:
                near = sorted(lk for lk in leaves if lk.startswith(prefix))[:6]
                raise ConfigError(key, v, f"unknown key in {source}; known keys here: {', '.join(near)}")

    walk(doc, "")


def _apply_env(cfg: Config, environ: typing.Mapping[str, str]) -> None:
    for key, owner, name, typ in _fields(cfg):
        raw = environ.get(env_name(key))
        if raw is not None:
            setattr(owner, name, _coerce(key, raw, typ, from_env=True))


#: allowed values; the models' own come from the (torch-free) modules that own them.  The decoders'
#: are repeated here because importing sidepath.decoders loads OpenCV and PyAV (a quarter second on
#: every CLI start); tests/unit/test_config.py keeps them equal to decoders/video.py and hwaccel.py.
_CHOICES = {
    "kafka.auto_offset_reset": ("earliest", "latest", "error"),
    "kafka.security_protocol": ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    "model.precision": PRECISIONS,
    "model.batch_tuning": BATCH_TUNING,
    "decode.video_mode": ("exact", "fast", "keyframes"),
    "decode.hwaccel": ("none", "cuda", "auto"),
}
_POSITIVE = (
    "model.max_batch", "model.instances", "decode.fps", "decode.max_frames",
    "decode.max_bytes", "decode.max_pixels", "decode.timeout_s", "sinks.batch_size",
    "engine.max_inflight_messages", "engine.max_inflight_bytes", "engine.commit_interval_s",
    "engine.commit_every", "engine.close_timeout_s", "engine.consume_batch", "metrics.ping_timeout_s",
    "metrics.read_timeout_s", "metrics.max_connections",
    "kafka.session_timeout_ms",
)
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")


def _validate(cfg: Config) -> None:
    flat = {key: getattr(owner, name) for key, owner, name, _ in _fields(cfg)}
    for key, choices in _CHOICES.items():
        if flat[key] not in choices:
            raise ConfigError(key, flat[key], f"use one of {', '.join(choices)}")
    for key in _POSITIVE:
        if flat[key] <= 0:
            raise ConfigError(key, flat[key], "must be greater than 0")
    for key in ("model.max_wait_ms", "decode.retries", "decode.threads", "engine.shutdown_grace_s",
                "engine.max_crashes",
                "deploy.init_delay_seconds", "deploy.replicas.hk", "deploy.replicas.eu", "deploy.replicas.na"):
        if flat[key] < 0:
            raise ConfigError(key, flat[key], "must be 0 or more")
    for key in ("engine.max_messages_per_s", "engine.max_bytes_per_s", "kafka.statistics_interval_ms",
                "decode.max_connections_per_host", "decode.max_requests_per_s_per_host",
                "live.max_lag", "live.resume_lag"):
        if flat[key] < 0:
            raise ConfigError(key, flat[key], "must be 0 or more (0 = no budget)" if "max_" in key and "engine" in key
                              else "must be 0 or more")
    if flat["live.resume_lag"] > flat["live.max_lag"]:
        raise ConfigError("live.resume_lag", flat["live.resume_lag"],
                          f"must not be above live.max_lag={flat['live.max_lag']} (resume below where it yields)")
    if flat["live.check_interval_s"] <= 0:
        raise ConfigError("live.check_interval_s", flat["live.check_interval_s"], "must be greater than 0")

    for w in flat["engine.run_window"]:
        parse_run_window(w)
    if not 0 < flat["engine.resume_fraction"] < 1:
        raise ConfigError("engine.resume_fraction", flat["engine.resume_fraction"], "use a fraction between 0 and 1")
    if not 0 <= flat["metrics.port"] <= 65535:
        raise ConfigError("metrics.port", flat["metrics.port"], "use a TCP port 0..65535 (0 = disabled)")
    if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", flat["service.name"]):
        raise ConfigError("service.name", flat["service.name"],
                          "use lowercase letters, digits and '-' (it names Kubernetes objects)")
    for key in ("kafka.bootstrap_servers", "kafka.topic", "kafka.group_id"):
        if not flat[key].strip():
            raise ConfigError(key, flat[key], f"must not be empty; set it in the file or {env_name(key)}")
    for hp in flat["kafka.bootstrap_servers"].split(","):
        if not re.match(r"^[\w.\-\[\]:]+:\d+$", hp.strip()):
            raise ConfigError("kafka.bootstrap_servers", flat["kafka.bootstrap_servers"],
                              "use host:port[,host:port...], e.g. 127.0.0.1:9092")
    dev = flat["model.device"]
    if not re.match(r"^(auto|cpu|cuda(:\d+)?)$", dev):
        raise ConfigError("model.device", dev, "use auto, cpu, cuda or cuda:N")
    if flat["kafka.security_protocol"].startswith("SASL") and not flat["kafka.sasl_mechanism"]:
        raise ConfigError("kafka.sasl_mechanism", "", "SASL needs a mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    for key in ("deploy.cpu", "deploy.memory", "deploy.gpu_memory"):
        if not _QUANTITY.match(str(flat[key])):
            raise ConfigError(key, flat[key], "use a Kubernetes quantity such as 4, 500m, 16Gi")
    if not flat["sinks.urls"]:
        raise ConfigError("sinks.urls", [], "configure at least one sink, e.g. [\"sqlite:///results.db\"]")
    if flat["sinks.exactly_once"]:
        _check_exactly_once(flat["sinks.urls"], flat["kafka.bootstrap_servers"])


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


def load_config(path: str | os.PathLike[str] | None = None, *,
                environ: typing.Mapping[str, str] | None = None,
                overrides: dict[str, Any] | None = None) -> Config:
    """Read the file (if it exists), apply env and explicit overrides, validate."""
    environ = os.environ if environ is None else environ
    cfg = Config()
    if path is not None:
        p = Path(path)
        if p.exists():
            try:
                doc = tomllib.loads(p.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError("file", str(p), f"not valid TOML ({exc}); fix the syntax") from None
            _apply(cfg, doc, source=str(p))
        elif str(path) != "sidepath.toml":
            raise ConfigError("--config", str(p), "file not found; pass an existing TOML file")
    _apply_env(cfg, environ)
    if overrides:
        nested: dict[str, Any] = {}
        for key, value in overrides.items():
            d = nested
            *head, last = key.split(".")
            for h in head:
                d = d.setdefault(h, {})
            d[last] = value
        _apply(cfg, nested, source="command-line options")
    _validate(cfg)
    return cfg


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
    leaves = {key for key, *_ in _fields(Config())}
    lines: list[str] = []

    def section(d: dict[str, Any], prefix: str) -> None:
        lines.append(f"[{prefix}]")
        nested = []
        for k, v in d.items():
            if f"{prefix}.{k}" in leaves:
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


def describe_keys() -> list[tuple[str, str, str, str]]:
    """(key, type, default, environment variable) for every config key."""
    out = []
    for key, owner, name, typ in _fields(Config()):
        t = getattr(typing.get_origin(typ) or typ, "__name__", str(typ))
        default = "(secret: env only)" if key in SECRET_KEYS else _toml_value(getattr(owner, name))
        out.append((key, t, default, env_name(key)))
    return out
