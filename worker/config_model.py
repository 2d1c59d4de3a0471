"""The configuration model: every key of ``sidepath.toml``, its type, default, limits and meaning.

One typed model (pydantic) is the single source of the keys: loading and validation
(worker/config.py), ``sidepath config keys`` and the docs' key table (worker/config_render.py)
and the chart's ``values.schema.json`` (worker/config_schema.py) all read it.  A rule that a type
cannot say is a ``Rule`` (its fix is the error's advice, its schema goes into the JSON Schema) or
a model validator that raises ``ConfigError`` itself.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic import ValidationInfo as Info
from pydantic.fields import FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from sidepath.core.errors import ConfigError
from sidepath.core.run_window import parse_run_window
from sidepath.models.batching import BATCH_TUNING
from sidepath.models.precisions import PRECISIONS

ENV_PREFIX = "SIDEPATH_"
SECRET_KEYS = {"kafka.sasl_password", "kafka.ssl_key_password"}


def env_name(key: str) -> str:
    """``kafka.bootstrap_servers`` -> ``SIDEPATH_KAFKA_BOOTSTRAP_SERVERS``."""
    return ENV_PREFIX + key.upper().replace(".", "_")


@dataclass(frozen=True)
class Rule:
    """A check beyond the type: ``fix`` is the advice of the error (``{env}``: the key's variable)."""

    ok: Callable[[Any], bool]
    fix: str
    schema: dict[str, Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {**handler(schema), **self.schema}

    def _check(self, value: Any) -> Any:
        if not self.ok(value):
            raise ValueError(self.fix)
        return value


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, f"use one of {', '.join(choices)}", {"enum": list(choices)})


def matching(pattern: str, fix: str) -> Rule:
    return Rule(lambda v: re.match(pattern, v) is not None, fix, {"pattern": pattern})


#: the decoders' choices are repeated here because importing sidepath.decoders loads OpenCV and PyAV (a
#: quarter second on every CLI start); tests/unit/test_config.py keeps them equal to the owning modules
VIDEO_MODES = ("exact", "fast", "keyframes")
HWACCEL_CHOICES = ("none", "cuda", "auto")
_NOT_BLANK = Rule(lambda v: bool(v.strip()), "must not be empty; set it in the file or {env}", {"minLength": 1})
_HOST_PORTS = r"^[A-Za-z0-9_.\-\[\]:]+:[0-9]+(, *[A-Za-z0-9_.\-\[\]:]+:[0-9]+)*$"
_QUANTITY = matching(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$", "use a Kubernetes quantity such as 4, 500m, 16Gi")
_SINK_URLS = Rule(lambda v: bool(v) and all(u.strip() for u in v),
                  "configure at least one sink, e.g. [\"sqlite:///results.db\"]",
                  {"minItems": 1, "items": {"type": "string", "minLength": 1}})
Quantity = Annotated[str, _QUANTITY]
NotBlank = Annotated[str, _NOT_BLANK]


class Section(BaseModel):
    """A ``[section]`` of the file: unknown keys refused, numbers accepted for strings (``cpu = 8``)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: Info) -> Any:
        """``max_batch = true`` is a mistake, not 1 (pydantic's lax mode would take it)."""
        if isinstance(value, bool) and info.field_name and cls.model_fields[info.field_name].annotation in (int, float):
            raise PydanticCustomError("bool_for_number", "a boolean where a number belongs")
        return value


class ServiceConfig(Section):
    name: Annotated[str, matching(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "use lowercase letters, digits and '-' "
                                  "(it names Kubernetes objects)")] = Field(default="sidepath", description=(
                                      "names Kubernetes objects and the log index"))
    team: str = Field(default="ml", description="the owning team (informational: nothing reads it)")
    namespace: str = Field(default="sidepath", description="the Kubernetes namespace (the chart sets the release's; "
                           "informational)")
    region: str = Field(default="", description="the region this worker runs in (hk, eu, na ...); part of the default "
                        "kafka.client_id")


class KafkaConfig(Section):
    bootstrap_servers: Annotated[str, _NOT_BLANK, matching(_HOST_PORTS, "use host:port[,host:port...], e.g. "
                                 "127.0.0.1:9092")] = Field(default="127.0.0.1:9092", description="the source cluster")
    topic: NotBlank = Field(default="posts", description="the topic of requests")
    group_id: NotBlank = Field(default="sidepath", description="the consumer group; offsets are committed under it")
    auto_offset_reset: Annotated[str, one_of("earliest", "latest", "error")] = Field(
        default="earliest", description="where a partition without a committed offset starts")
    security_protocol: Annotated[str, one_of("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")] = Field(
        default="PLAINTEXT", description="librdkafka security.protocol")
    sasl_mechanism: str = Field(default="", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; needed with SASL")
    sasl_username: str = Field(default="", description="the SASL user")
    sasl_password: str = Field(default="", repr=False, description="the SASL password: environment only")
    ssl_ca_location: str = Field(default="", description="CA certificate file for SSL")
    ssl_key_password: str = Field(default="", repr=False, description="the SSL key's password: environment only")
    session_timeout_ms: int = Field(default=45000, gt=0, description="a member silent this long leaves the group")
    max_poll_interval_ms: int = Field(default=300000, description="librdkafka max.poll.interval.ms")
    client_id: str = Field(default="", description="the client.id brokers see, stable across pods so that a "
                           "quota can be set on it; empty: <service.name>-<service.region>")
    statistics_interval_ms: int = Field(default=5000, ge=0, description="librdkafka statistics every this many ms "
                                        "(broker throttle time as a metric); 0 = off")
    group_instance_id: str = Field(default="", description="static group membership: a restarted pod back within "
                                   "session_timeout_ms keeps its partitions; empty = dynamic (the chart sets the "
                                   "pod name)")
    consumer: dict[str, Any] = Field(default_factory=dict, description="extra librdkafka consumer settings, e.g. "
                                     "{\"fetch.max.bytes\" = \"1048576\"}")

    @model_validator(mode="after")
    def _sasl_has_a_mechanism(self) -> KafkaConfig:
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            raise ConfigError("kafka.sasl_mechanism", "", "SASL needs a mechanism: PLAIN, SCRAM-SHA-256 or "
                              "SCRAM-SHA-512")
        return self


class ModelConfig(Section):
    name: str = Field(default="fingerprint", description="the model (`sidepath models` lists them)")
    options: dict[str, Any] = Field(default_factory=dict, description="the model's own options (docs/models.md)")
    extra: list[str] = Field(default_factory=list, description="further models over the same decoded items "
                             "(decode once)")
    device: Annotated[str, matching(r"^(auto|cpu|cuda(:[0-9]+)?)$", "use auto, cpu, cuda or cuda:N")] = Field(
        default="auto", description="auto, cpu, cuda or cuda:N")
    precision: Annotated[str, one_of(*PRECISIONS)] = Field(default="auto", description="inference precision")
    max_batch: int = Field(default=32, gt=0, description="items per model call at most")
    batch_tuning: Annotated[str, one_of(*BATCH_TUNING)] = Field(
        default="auto", description="measure at warm-up the batch size the network runs fastest at (auto: on CPU only)")
    max_wait_ms: int = Field(default=20, ge=0, description="a partial batch waits this long for more items")
    instances: int = Field(default=1, gt=0, description="model copies run side by side")


class DecodeConfig(Section):
    threads: int = Field(default=0, ge=0, description="decode threads; 0 = the container's usable CPUs less 2")
    fps: float = Field(default=1.0, gt=0, description="video frames sampled per second")
    max_frames: int = Field(default=32, gt=0, description="frames per video at most")
    video_mode: Annotated[str, one_of(*VIDEO_MODES)] = Field(default="exact", description="how frames are sought "
                                                             "(docs/decoders.md)")
    hwaccel: Annotated[str, one_of(*HWACCEL_CHOICES)] = Field(default="none", description="decode video on NVDEC "
                                                              "(docs/decoders.md)")
    max_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="media larger than this is refused")
    max_pixels: int = Field(default=64_000_000, gt=0, description="pixels per image or frame at most")
    max_duration_s: float = Field(default=3600.0, description="frames are sampled from this many seconds of a "
                                  "video at most")
    timeout_s: float = Field(default=15.0, gt=0, description="per media fetch")
    retries: int = Field(default=3, ge=0, description="fetch retries on transient errors")
    allow_hosts: list[str] = Field(default_factory=list, description="hosts or networks admitted despite the "
                                   "address rules (docs/security.md)")
    allow_private: bool = Field(default=False, description="admit private and loopback media addresses (never "
                                "link-local)")
    file_roots: list[str] = Field(default_factory=list, description="folders file:// media may come from")
    max_connections_per_host: int = Field(default=8, ge=0, description="open connections per media host; 0 = no cap")
    max_requests_per_s_per_host: float = Field(default=0.0, ge=0, description="requests per second per media host; "
                                               "0 = no cap")


class SinksConfig(Section):
    urls: Annotated[list[str], _SINK_URLS] = Field(
        default_factory=lambda: ["file://./var/results.jsonl", "sqlite:///./var/results.db"],
        description="where results go (docs/sinks.md)")
    dead_letter: str = Field(default="file://./var/dead-letters.jsonl", description="where failed messages go")
    batch_size: int = Field(default=200, gt=0, description="results per sink write at most")
    batch_wait_ms: int = Field(default=0, description="0: write whatever is queued as soon as the last write is done")
    retry_deadline_s: float = Field(default=600.0, description="a failing sink is retried this long, then the worker "
                                    "stops")
    exactly_once: bool = Field(default=False, description="results and source offsets in one Kafka transaction "
                               "(kafka:// result sinks on the source cluster)")
    transactional_id: str = Field(default="", description="the exactly-once producer id; empty: "
                                  "sidepath-<group>-<host>-<pid>")


class EngineConfig(Section):
    max_inflight_messages: int = Field(default=512, gt=0, description="messages in flight at most")
    max_inflight_bytes: int = Field(default=512 * 1024 * 1024, gt=0, description="message bytes in flight at most")
    resume_fraction: Annotated[float, Rule(lambda v: 0 < v < 1, "use a fraction between 0 and 1", {
        "exclusiveMinimum": 0, "exclusiveMaximum": 1})] = Field(
        default=0.5, description="after a cap, take messages again below this fraction of it")
    commit_interval_s: float = Field(default=5.0, gt=0, description="commit offsets at least this often")
    commit_every: int = Field(default=1000, gt=0, description="or after this many completed messages")
    shutdown_grace_s: float = Field(default=25.0, ge=0, description="in-flight work may finish this long at shutdown")
    revoke_budget_s: float = Field(default=10.0, description="a rebalance waits this long for in-flight work")
    pause_after_s: float = Field(default=1.0, description="at a cap this long, pause the partitions (else just stop "
                                 "taking)")
    close_timeout_s: float = Field(default=10.0, gt=0, description="leaving the group may take this long at shutdown")
    consume_batch: int = Field(default=500, gt=0, description="messages per consume() call at most")
    max_messages_per_s: float = Field(default=0.0, ge=0, description="budget per worker; the group's is this x the "
                                      "replicas; 0 = no budget")
    max_bytes_per_s: float = Field(default=0.0, ge=0, description="budget per worker in bytes; 0 = no budget")
    run_window: list[str] = Field(default_factory=list, description="consume only inside these daily windows, "
                                  "e.g. [\"22:00-06:00 Asia/Shanghai\"]; [] = always")
    max_crashes: int = Field(default=2, ge=0, description="a message alone in flight at this many crashes is "
                             "dead-lettered (docs/reliability.md); 0 = off")

    @field_validator("run_window")
    @classmethod
    def _windows_parse(cls, windows: list[str]) -> list[str]:
        for window in windows:
            parse_run_window(window)        # raises ConfigError naming engine.run_window
        return windows


class LiveConfig(Section):
    """The live (human-review) pipeline this worker steps back for (docs/operations.md)."""

    group_id: str = Field(default="", description="its consumer group; empty = never yield")
    topic: str = Field(default="", description="the topic that group reads; empty = kafka.topic")
    max_lag: int = Field(default=10000, ge=0, description="yield while that group's lag is above this")
    resume_lag: int = Field(default=1000, ge=0, description="and consume again once it is at or below this")
    check_interval_s: float = Field(default=5.0, gt=0, description="how often that group's lag is read")

    @model_validator(mode="after")
    def _resume_below_yield(self) -> LiveConfig:
        if self.resume_lag > self.max_lag:
            raise ConfigError("live.resume_lag", self.resume_lag, f"must not be above live.max_lag={self.max_lag} "
                              "(resume below where it yields)")
        return self


class MetricsConfig(Section):
    port: Annotated[int, Rule(lambda v: 0 <= v <= 65535, "use a TCP port 0..65535 (0 = disabled)", {
        "minimum": 0, "maximum": 65535})] = Field(default=9108, description="the health and metrics TCP port; "
                                                  "0 = disabled")
    host: str = Field(default="127.0.0.1", description="its bind address: loopback on a dev machine, the pod IP in the "
                      "chart")
    read_timeout_s: float = Field(default=10.0, gt=0, description="per connection, to send its request")
    max_connections: int = Field(default=32, gt=0, description="open at once; at the cap the oldest half-sent one is "
                                 "closed")
    ping_timeout_s: float = Field(default=30.0, gt=0, description="/ping fails when the poll loop is silent, or one "
                                  "model call lasts, this long")
    stall_after_s: float = Field(default=300.0, description="a partition with lag whose committed offset has not "
                                 "moved this long counts as stalled")
    lag_interval_s: float = Field(default=5.0, description="how often the lag metrics are refreshed")


class ReplicasConfig(Section):
    hk: int = Field(default=1, ge=0, description="replicas in hk")
    eu: int = Field(default=1, ge=0, description="replicas in eu")
    na: int = Field(default=1, ge=0, description="replicas in na")


class DeployConfig(Section):
    cpu: Quantity = Field(default="8", description="CPU request (Kubernetes quantity)")
    memory: Quantity = Field(default="16Gi", description="memory request")
    gpu_memory: Quantity = Field(default="16Gi", description="GPU memory, also the worker's CUDA memory fraction")
    init_delay_seconds: int = Field(default=60, ge=0, description="the probes wait this long after start")
    replicas: ReplicasConfig = Field(default_factory=ReplicasConfig)


class Config(Section):
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _walk(info.annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", info


#: every key, dotted (``deploy.replicas.hk``), in file order, with its field
LEAVES: dict[str, FieldInfo] = dict(_walk(Config))
#: the allowed values of the keys that have a fixed set
CHOICES: dict[str, tuple[str, ...]] = {
    key: tuple(rule.schema["enum"]) for key, info in LEAVES.items()
    for rule in info.metadata if isinstance(rule, Rule) and "enum" in rule.schema}


def type_name(key: str) -> str:
    """``int``, ``float``, ``bool``, ``str``, ``list`` or ``dict``."""
    annotation = LEAVES[key].annotation
    return getattr(getattr(annotation, "__origin__", annotation), "__name__", str(annotation))
