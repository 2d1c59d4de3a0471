"""Assemble a worker from the config and run it until it stops.

Start-up order: metrics + HTTP (so liveness answers while a slow model loads),
sinks (fail fast on a bad URL), models (load + warm-up, then ready), stages,
then the consumer joins the group.  Shutdown runs in the reverse order.
"""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from types import FrameType
from typing import Any

from confluent_kafka import Consumer, KafkaError
from prometheus_client import CollectorRegistry

from sidepath.core.errors import ConfigError, FatalError
from sidepath.core.logs import Throttle
from sidepath.decoders.host_limits import FetchThrottleCollector
from sidepath.worker.config import Config, masked
from sidepath.worker.engine.commit import CommitStrategy, PlainCommit, TransactionalCommit
from sidepath.worker.engine.hooks import EngineHooks
from sidepath.worker.engine.pacing import pacer_from_config
from sidepath.worker.engine.pipeline import Pipeline
from sidepath.worker.engine.poll_loop import Engine, StartAt
from sidepath.worker.engine.request import Parse
from sidepath.worker.kafka_config import consumer_config, lag_reader_config
from sidepath.worker.ops.broker_stats import throttle_stats_cb
from sidepath.worker.ops.health import Health
from sidepath.worker.ops.http import HealthServer
from sidepath.worker.ops.lag_reader import LagReader
from sidepath.worker.ops.metrics import Metrics, build_metrics

__all__ = ["run_worker"]

log = logging.getLogger(__name__)


def _install_signals(engine: Engine, grace_s: float) -> None:
    hits = {"n": 0}

    def handler(signum: int, _frame: FrameType | None) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            log.error("second signal: exiting now")
            os._exit(1)
        log.info("signal %s: draining (up to %.0f s), then committing and leaving the group",
                 signal.Signals(signum).name, grace_s)
        engine.request_stop()
        # a hung close must not keep the pod past its grace period
        def hung() -> None:
            log.error("shutdown hung; exiting (every thread's stack follows on stderr, to say where)")
            faulthandler.dump_traceback(all_threads=True)
            os._exit(1)

        t = threading.Timer(grace_s + 15, hung)
        t.daemon = True
        t.start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run_worker(cfg: Config, *, start: StartAt = None, until_end: bool = False, max_messages: int = 0,
               registry: CollectorRegistry | None = None, on_engine: Callable[[Engine], None] | None = None,
               parse: Parse | None = None, wall_clock: Callable[[], float] | None = None) -> dict[str, Any]:
    """``wall_clock`` (a () -> epoch seconds) replaces time.time for the run windows (tests)."""
    log.info("starting with config %s", masked(cfg))
    metrics = build_metrics(registry)
    metrics.registry.register(FetchThrottleCollector())
    health = Health(metrics, group=cfg.kafka.group_id, ping_timeout_s=cfg.metrics.ping_timeout_s,
                    stall_after_s=cfg.metrics.stall_after_s)
    server = None
    if cfg.metrics.port:
        try:
            server = HealthServer(metrics.registry, ping=health.ping, ready=health.ready,
                                  host=cfg.metrics.host, port=cfg.metrics.port,
                                  read_timeout_s=cfg.metrics.read_timeout_s,
                                  max_connections=cfg.metrics.max_connections).start()
        except OSError as exc:
            raise ConfigError("metrics.port", cfg.metrics.port, f"cannot listen ({exc.strerror}); "
                              "pick a free port or 0 to disable") from None
        log.info("metrics and health on %s:%d", cfg.metrics.host, server.port)

    try:
        stats = _run(cfg, metrics, health, start=start, until_end=until_end, max_messages=max_messages,
                     on_engine=on_engine, parse=parse, wall_clock=wall_clock)
    finally:
        if server is not None:
            server.stop()
    log.info("stopped: %s", stats)
    if stats.get("fatal"):
        log.error("fatal: %s", stats["fatal"])
    return stats



def _run(cfg: Config, metrics: Metrics, health: Health, *, start: StartAt, until_end: bool, max_messages: int,
         on_engine: Callable[[Engine], None] | None, parse: Parse | None,
         wall_clock: Callable[[], float] | None) -> dict[str, Any]:
    hooks = EngineHooks()       # the pipeline's and the consumer's callbacks, bound to the engine below
    pipe = Pipeline(cfg, metrics, group=cfg.kafka.group_id, on_fatal=hooks.report_fatal, exactly_once=True,
                    add_bytes=hooks.add_bytes)
    health.models_ready = True
    if str(pipe.device).startswith("cuda"):
        from sidepath.models import gpu_memory_used
        from sidepath.models.device import parse_quantity

        metrics.gpu_memory_budget.set(parse_quantity(cfg.deploy.gpu_memory))
        health.gpu_used = lambda: gpu_memory_used(pipe.device)
    health.runners = pipe.runners
    repeats = Throttle()
    stats = {"statistics.interval.ms": cfg.kafka.statistics_interval_ms,
             "stats_cb": throttle_stats_cb(metrics.registry)} if cfg.kafka.statistics_interval_ms else {}
    consumer = Consumer(consumer_config(cfg, on_commit=hooks.on_commit,
                                        error_cb=partial(_on_client_error, on_fatal=hooks.report_fatal,
                                                         repeats=repeats), **stats))
    committer: CommitStrategy = PlainCommit(consumer) if pipe.transactions is None \
        else TransactionalCommit(consumer, pipe.transactions)
    pacer = pacer_from_config(cfg, metrics.registry, wall=wall_clock or time.time)
    engine = Engine(consumer, topic=cfg.kafka.topic, group=cfg.kafka.group_id, models=pipe.models,
                    decode_stage=pipe.decode_stage, failures=pipe.failures, completions=pipe.completions,
                    metrics=metrics, limits=cfg.engine, start=start, until_end=until_end, max_messages=max_messages,
                    is_blocked=pipe.writer.blocked.is_set, health=health, **({"parse": parse} if parse else {}),
                    commit=committer, pacer=pacer)
    hooks.bind(engine)          # before anything starts: a fatal error reported until now stops it at once
    if on_engine is not None:
        on_engine(engine)
    _install_signals(engine, cfg.engine.shutdown_grace_s)
    # the lag metrics come from a thread with its own client: a slow broker never holds the poll loop up;
    # --from-beginning starts a partition without a committed offset at its log start, like earliest
    lag = LagReader(health, lambda: Consumer(lag_reader_config(cfg)), interval_s=cfg.metrics.lag_interval_s,
                    reset="earliest" if start == "beginning" else cfg.kafka.auto_offset_reset)
    pipe.start()
    metrics.starting.set(0)         # the poll loop starts now: from here on a silent loop is stuck
    lag.start()
    try:
        result = engine.run()
    finally:
        lag.stop()
        pacer.close()
        pipe.stop()
    return result


def _on_client_error(err: KafkaError, on_fatal: Callable[[BaseException], None], repeats: Throttle) -> None:
    """librdkafka's error callback: most errors are transient (the client reconnects); each kind
    is said once per 30 s, the repeats go to debug."""
    if err.fatal():
        on_fatal(FatalError(f"Kafka client fatal error: {err.str()}"))
    elif err.code() == KafkaError._AUTHENTICATION:
        on_fatal(FatalError(f"Kafka authentication failed ({err.str()}); check kafka.sasl_username and "
                            "SIDEPATH_KAFKA_SASL_PASSWORD"))
    elif not repeats.due(err.code()):
        log.debug("Kafka: %s", err.str())
    elif err.code() in (-195, -187):   # _TRANSPORT / _ALL_BROKERS_DOWN: it reconnects by itself
        log.warning("Kafka: %s (retrying; check kafka.bootstrap_servers and that the brokers are up)", err.str())
    else:
        log.warning("Kafka: %s", err.str())
