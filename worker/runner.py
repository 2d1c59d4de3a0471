"""Assemble a worker from the config and run it until it stops.

Start-up order: metrics + HTTP (so liveness answers while a slow model loads),
sinks (fail fast on a bad URL), models (load + warm-up, then ready), stages,
then the consumer joins the group.  Shutdown runs in the reverse order.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
from dataclasses import replace
from typing import Any

from confluent_kafka import Consumer, KafkaError
from prometheus_client import CollectorRegistry

from sidepath.decoders.base import DecodeSpec
from sidepath.worker.config import Config, expand_env, mask_url, masked
from sidepath.worker.engine import Engine, EngineLimits, StartAt
from sidepath.worker.errors import ConfigError, FatalError
from sidepath.worker.health import Health
from sidepath.worker.http import HealthServer
from sidepath.worker.kafka_config import consumer_config
from sidepath.worker.metrics import build_metrics
from sidepath.worker.stages import STOP, DecodeStage, Failures, ModelRunner, SinkWriter

__all__ = ["run_worker", "build_models", "merged_spec"]

log = logging.getLogger(__name__)


def build_models(cfg: Config) -> list[Any]:
    """The primary model (with its options) plus ``model.extra`` models, one instance each."""
    from sidepath.models import create_model

    names = [cfg.model.name, *cfg.model.extra]
    if len(set(names)) != len(names):
        raise ConfigError("model.extra", cfg.model.extra, "each model may appear once")
    return [create_model(n, max_batch=cfg.model.max_batch, precision=cfg.model.precision,
                         options=cfg.model.options if i == 0 else {}) for i, n in enumerate(names)]


def merged_spec(cfg: Config, models: list[Any]) -> DecodeSpec:
    """One decode for every model: the union of what they need."""
    specs = [m.decode_spec() for m in models]
    audio = [s for s in specs if s.audio]
    return replace(specs[0], frames=any(s.frames for s in specs), audio=bool(audio),
                   fps=cfg.decode.fps, max_frames=cfg.decode.max_frames, video_mode=cfg.decode.video_mode,
                   max_side=max((s.max_side for s in specs), default=0) if all(s.max_side for s in specs) else 0,
                   sample_rate=audio[0].sample_rate if audio else specs[0].sample_rate,
                   max_audio_s=max((s.max_audio_s for s in audio), default=specs[0].max_audio_s),
                   max_duration_s=cfg.decode.max_duration_s)


def _install_signals(engine: Engine, grace_s: float) -> None:
    hits = {"n": 0}

    def handler(signum: int, _frame: Any) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            log.error("second signal: exiting now")
            os._exit(1)
        log.info("signal %s: draining (up to %.0f s), then committing and leaving the group",
                 signal.Signals(signum).name, grace_s)
        engine.request_stop()
        # a hung close must not keep the pod past its grace period
        t = threading.Timer(grace_s + 15, lambda: (log.error("shutdown hung; exiting"), os._exit(1)))
        t.daemon = True
        t.start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def run_worker(cfg: Config, *, start: StartAt = None, until_end: bool = False, max_messages: int = 0,
               registry: CollectorRegistry | None = None, on_engine: Any = None) -> dict[str, Any]:
    from sidepath.decoders import Fetcher, decode_media
    from sidepath.models import apply_memory_budget, pick_device
    from sidepath.sinks import open_dead_letter_sink, open_sink

    t_start = time.monotonic()
    log.info("starting with config %s", masked(cfg))
    metrics = build_metrics(registry)
    health = Health(metrics, group=cfg.kafka.group_id, ping_timeout_s=cfg.metrics.ping_timeout_s,
                    stall_after_s=cfg.metrics.stall_after_s, lag_interval_s=cfg.metrics.lag_interval_s)
    server = None
    if cfg.metrics.port:
        try:
            server = HealthServer(metrics.registry, ping=health.ping, ready=health.ready,
                                  host=cfg.metrics.host, port=cfg.metrics.port).start()
        except OSError as exc:
            raise ConfigError("metrics.port", cfg.metrics.port, f"cannot listen ({exc.strerror}); "
                              "pick a free port or 0 to disable") from None
        log.info("metrics and health on :%d", server.port)

    sinks = [open_sink(expand_env(u)) for u in cfg.sinks.urls]
    dlq = open_dead_letter_sink(expand_env(cfg.sinks.dead_letter))
    log.info("sinks: %s; dead letters: %s", ", ".join(mask_url(u) for u in cfg.sinks.urls),
             mask_url(cfg.sinks.dead_letter))

    device = pick_device(cfg.model.device)
    apply_memory_budget(device, cfg.deploy.gpu_memory)
    models = build_models(cfg)
    instances = [models] + [build_models(cfg)[:1] for _ in range(cfg.model.instances - 1)]
    for group in instances:
        for m in group:
            m.load(device)
            m.warmup()
    metrics.model_info.info({m.name: m.version for m in models})
    health.models_ready = True
    log.info("models ready on %s: %s (%.1f s)", device, ", ".join(f"{m.name}@{m.version}" for m in models),
             time.monotonic() - t_start)

    out_q: queue.Queue[Any] = queue.Queue()
    completions: queue.Queue[Any] = queue.Queue()
    failures = Failures(models, out_q, metrics, cfg.kafka.group_id)
    model_queues: dict[str, queue.Queue[Any]] = {m.name: queue.Queue() for m in models}
    fatal_box: list[BaseException] = []
    engine_ref: list[Engine] = []

    def on_fatal(exc: BaseException) -> None:
        fatal_box.append(exc)
        if engine_ref:
            engine_ref[0].report_fatal(exc)

    runners = []
    for i, group in enumerate(instances):
        for m in group:
            runners.append(ModelRunner(m, model_queues[m.name], out_q, max_wait_s=cfg.model.max_wait_ms / 1000,
                                       failures=failures, metrics=metrics, on_fatal=on_fatal,
                                       name=f"model-{m.name}-{i}"))
    health.runners = runners
    writer = SinkWriter(sinks, dlq, out_q, completions, batch_size=cfg.sinks.batch_size,
                        batch_wait_s=cfg.sinks.batch_wait_ms / 1000, retry_deadline_s=cfg.sinks.retry_deadline_s,
                        metrics=metrics, group=cfg.kafka.group_id, on_fatal=on_fatal)
    fetcher = Fetcher(max_bytes=cfg.decode.max_bytes, timeout_s=cfg.decode.timeout_s, retries=cfg.decode.retries,
                      allow_hosts=cfg.decode.allow_hosts, allow_private=cfg.decode.allow_private,
                      file_roots=cfg.decode.file_roots, max_pixels=cfg.decode.max_pixels)
    spec = merged_spec(cfg, models)
    engine_holder: list[Engine] = []
    decode_stage = DecodeStage(models=models, spec=spec,
                               decode=lambda ref, kind, s: decode_media(ref, kind, s, fetcher),
                               threads=cfg.decode.threads, model_queues=model_queues, failures=failures,
                               metrics=metrics, add_bytes=lambda inf, n: engine_holder[0].add_bytes(inf, n))
    consumer = Consumer(consumer_config(cfg, on_commit=lambda err, parts: engine_ref[0].on_commit(err, parts)
                                        if engine_ref else None,
                                        error_cb=lambda err: _on_client_error(err, on_fatal)))
    e = cfg.engine
    limits = EngineLimits(max_inflight_messages=e.max_inflight_messages, max_inflight_bytes=e.max_inflight_bytes,
                          resume_fraction=e.resume_fraction, commit_interval_s=e.commit_interval_s,
                          commit_every=e.commit_every, shutdown_grace_s=e.shutdown_grace_s,
                          revoke_budget_s=e.revoke_budget_s)
    engine = Engine(consumer, topic=cfg.kafka.topic, group=cfg.kafka.group_id, models=models,
                    decode_stage=decode_stage, failures=failures, completions=completions, metrics=metrics,
                    limits=limits, start=start, until_end=until_end, max_messages=max_messages,
                    is_blocked=writer.blocked.is_set, health=health)
    engine_ref.append(engine)
    engine_holder.append(engine)
    health.engine = engine
    if fatal_box:
        engine.report_fatal(fatal_box[0])
    if on_engine is not None:
        on_engine(engine)
    _install_signals(engine, e.shutdown_grace_s)
    for r in runners:
        r.start()
    writer.start()
    try:
        stats = engine.run()
    finally:
        decode_stage.close(wait=False)
        for r in runners:
            r.q.put(STOP)
        out_q.put(STOP)
        writer.join(timeout=10)
        for s in sinks:
            _close(s)
        _close(dlq)
        if server is not None:
            server.stop()
    log.info("stopped: %s", stats)
    if stats.get("fatal"):
        log.error("fatal: %s", stats["fatal"])
    return stats


def _close(obj: Any) -> None:
    try:
        obj.close()
    except Exception as exc:  # noqa: BLE001 - closing must not hide the stats
        log.warning("close of %s failed: %s", getattr(obj, "url", obj), exc)


def _on_client_error(err: Any, on_fatal: Any) -> None:
    """librdkafka's error callback: most errors are transient (the client reconnects)."""
    if err.fatal():
        on_fatal(FatalError(f"Kafka client fatal error: {err.str()}"))
    elif err.code() == KafkaError._AUTHENTICATION:
        on_fatal(FatalError(f"Kafka authentication failed ({err.str()}); check kafka.sasl_username and "
                            "SIDEPATH_KAFKA_SASL_PASSWORD"))
    elif err.code() in (-195, -187):   # _TRANSPORT / _ALL_BROKERS_DOWN: it reconnects by itself
        log.warning("Kafka: %s (retrying)", err.str())
    else:
        log.warning("Kafka: %s", err.str())
