"""librdkafka settings built from the config: consumer, producer, admin."""
from __future__ import annotations

import os
from typing import Any

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.config import Config, env_name

__all__ = ["client_id", "consumer_config", "lag_reader_config", "producer_config", "admin_config", "security_config"]


def security_config(cfg: Config) -> dict[str, Any]:
    k = cfg.kafka
    out: dict[str, Any] = {"security.protocol": k.security_protocol}
    if k.security_protocol.startswith("SASL"):
        password = k.sasl_password or os.environ.get(env_name("kafka.sasl_password"), "")
        out.update({"sasl.mechanism": k.sasl_mechanism, "sasl.username": k.sasl_username,
                    "sasl.password": password})
    if k.ssl_ca_location:
        out["ssl.ca.location"] = k.ssl_ca_location
    if k.ssl_key_password:
        out["ssl.key.password"] = k.ssl_key_password
    return out


def client_id(cfg: Config) -> str:
    """The consumer's client.id: kafka.client_id, else <service.name>-<service.region> (or the name alone).
    The same on every pod of a service and region, so a broker quota set on it covers them all."""
    if cfg.kafka.client_id:
        return cfg.kafka.client_id
    return f"{cfg.service.name}-{cfg.service.region}" if cfg.service.region else cfg.service.name


def consumer_config(cfg: Config, **extra: Any) -> dict[str, Any]:
    k = cfg.kafka
    conf: dict[str, Any] = {
        **librdkafka_logging(),
        "bootstrap.servers": k.bootstrap_servers,
        "group.id": k.group_id,
        "client.id": client_id(cfg),
        "enable.auto.commit": False,            # commit only after results are durable
        "enable.auto.offset.store": False,
        "auto.offset.reset": k.auto_offset_reset,
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": k.session_timeout_ms,
        "max.poll.interval.ms": k.max_poll_interval_ms,
        # bound the client's prefetch so a backlog cannot exhaust memory
        "queued.max.messages.kbytes": 8192,
        "queued.min.messages": 20000,
        # librdkafka waits this long before refetching once its queue is full (default 1 s stalls us)
        "fetch.queue.backoff.ms": 20,
        "fetch.max.bytes": 8 * 1024 * 1024,
        "max.partition.fetch.bytes": 1024 * 1024,
        **security_config(cfg),
        **k.consumer,
        **extra,
    }
    if k.group_instance_id:
        conf["group.instance.id"] = k.group_instance_id
    # cooperative rebalancing is what the engine's incremental assign/unassign relies on
    conf["partition.assignment.strategy"] = "cooperative-sticky"
    return conf


def lag_reader_config(cfg: Config) -> dict[str, Any]:
    """The lag reader's client: the group's id (to read its committed offsets) but a client.id of its
    own, which a broker quota on the worker's client.id does not hold back (docs/operations.md,
    "Setting a broker quota"); it never joins the group, so it takes no static member id."""
    conf = consumer_config(cfg, **{"client.id": f"{client_id(cfg)}-lag"})
    conf.pop("group.instance.id", None)
    return conf


def producer_config(cfg: Config, **extra: Any) -> dict[str, Any]:
    return {**librdkafka_logging(), "bootstrap.servers": cfg.kafka.bootstrap_servers, "enable.idempotence": True,
            "acks": "all", "linger.ms": 5, **security_config(cfg), **extra}


def admin_config(cfg: Config) -> dict[str, Any]:
    return {**librdkafka_logging(), "bootstrap.servers": cfg.kafka.bootstrap_servers, **security_config(cfg)}
