"""The stages behind any source: models loaded, decode pool, runners, sink writer.

Both the streaming worker (Kafka source, ``worker/engine/poll_loop.py``) and finite jobs
(``worker/jobs/backfill.py``) build one ``Pipeline`` and feed it ``Inflight``
messages; completions come back on ``pipeline.completions``.
"""
from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from sidepath.core.errors import ConfigError
from sidepath.core.masking import mask_url
from sidepath.decoders.base import DecodeSpec
from sidepath.models.base import Model
from sidepath.sinks.base import DeadLetterSink, Sink
from sidepath.worker.config import Config
from sidepath.worker.engine.cpus import decode_threads
from sidepath.worker.engine.gc_tuning import settle_after_startup
from sidepath.worker.engine.handoff import CompletionQueue, ModelQueue, ResultQueue
from sidepath.worker.engine.inflight import Inflight
from sidepath.worker.engine.model_runner import ModelRunner
from sidepath.worker.engine.sink_writer import SinkWriter
from sidepath.worker.engine.stages import DecodeStage, Failures
from sidepath.worker.ops.metrics import Metrics

__all__ = ["Pipeline", "build_models", "merged_spec"]

log = logging.getLogger(__name__)


def build_models(cfg: Config) -> list[Model]:
    """The primary model (with its options) plus ``model.extra`` models, one instance each."""
    from sidepath.models import create_model

    names = [cfg.model.name, *cfg.model.extra]
    if len(set(names)) != len(names):
        raise ConfigError("model.extra", cfg.model.extra, "each model may appear once")
    return [create_model(n, max_batch=cfg.model.max_batch, precision=cfg.model.precision,
                         options=cfg.model.options if i == 0 else {}, batch_tuning=cfg.model.batch_tuning)
            for i, n in enumerate(names)]


def merged_spec(cfg: Config, models: Sequence[Model]) -> DecodeSpec:
    """One decode for every model: the union of what they need.

    ``decode.hwaccel`` is resolved here, once at start: ``cuda`` that cannot decode on this
    machine is a ``ConfigError``; ``auto`` becomes ``cuda`` or ``none`` (decoders/hwaccel.py).
    """
    from sidepath.decoders.hwaccel import resolve_hwaccel

    specs = [m.decode_spec() for m in models]
    audio = [s for s in specs if s.audio]
    spec: DecodeSpec = replace(specs[0], frames=any(s.frames for s in specs), audio=bool(audio),
                          fps=cfg.decode.fps, max_frames=cfg.decode.max_frames, video_mode=cfg.decode.video_mode,
                          max_side=max(s.max_side for s in specs) if all(s.max_side for s in specs) else 0,
                          sample_rate=audio[0].sample_rate if audio else specs[0].sample_rate,
                          max_audio_s=max((s.max_audio_s for s in audio), default=specs[0].max_audio_s),
                          max_duration_s=cfg.decode.max_duration_s,
                          hwaccel=resolve_hwaccel(cfg.decode.hwaccel, cfg.model.device))
    return spec


class Pipeline:
    """Opens sinks, loads models (+ warm-up), and wires the stage threads together."""

    def __init__(self, cfg: Config, metrics: Metrics, *, group: str,
                 on_fatal: Callable[[BaseException], None], exactly_once: bool = False,
                 add_bytes: Callable[[Inflight, int], None] = lambda inf, n: None) -> None:
        """``exactly_once`` (the Kafka source only; jobs write at least once): the result sink is a
        ``TransactionalResults`` that only checks sizes; the engine writes what it holds."""
        from sidepath.decoders import Fetcher, decode_media
        from sidepath.models import apply_memory_budget, pick_device
        from sidepath.sinks import open_dead_letter_sink, open_sink

        t0 = time.monotonic()
        self.metrics = metrics
        self.transactions = None
        if exactly_once and cfg.sinks.exactly_once:
            from sidepath.sinks.kafka_transaction import TransactionalResults, default_transactional_id

            self.transactions = TransactionalResults(
                cfg.sinks.urls, transactional_id=cfg.sinks.transactional_id or default_transactional_id(group))
            self.sinks: list[Sink] = [self.transactions]
            log.info("exactly-once: results and offsets in Kafka transactions (transactional.id %s)",
                     self.transactions.transactional_id)
        else:
            self.sinks = [open_sink(u) for u in cfg.sinks.urls]   # open_sink fills ${VAR} (URL-encoded)
        self.dlq = open_dead_letter_sink(cfg.sinks.dead_letter)
        log.info("sinks: %s; dead letters: %s", ", ".join(mask_url(u) for u in cfg.sinks.urls),
                 mask_url(cfg.sinks.dead_letter))
        self.device = pick_device(cfg.model.device)
        apply_memory_budget(self.device, cfg.deploy.gpu_memory)
        self.models = build_models(cfg)
        instances = [self.models] + [build_models(cfg)[:1] for _ in range(cfg.model.instances - 1)]
        for group_ in instances:
            for m in group_:
                m.load(self.device)
                m.warmup()
        metrics.model_info.info({m.name: m.version for m in self.models})
        log.info("models ready on %s: %s (%.1f s)", self.device,
                 ", ".join(f"{m.name}@{m.version}" for m in self.models), time.monotonic() - t0)

        # SimpleQueue: the C implementation; these hand-offs run once per message
        self.out_q: ResultQueue = queue.SimpleQueue()
        self.completions: CompletionQueue = queue.SimpleQueue()
        self.failures = Failures(self.models, self.out_q, metrics, group)
        self.model_queues: dict[str, ModelQueue] = {m.name: queue.SimpleQueue() for m in self.models}
        self.runners = [
            ModelRunner(m, self.model_queues[m.name], self.out_q, max_wait_s=cfg.model.max_wait_ms / 1000,
                        failures=self.failures, metrics=metrics, on_fatal=on_fatal, name=f"model-{m.name}-{i}")
            for i, group_ in enumerate(instances) for m in group_]
        self.writer = SinkWriter(self.sinks, self.dlq, self.out_q, self.completions,
                                 batch_size=cfg.sinks.batch_size, batch_wait_s=cfg.sinks.batch_wait_ms / 1000,
                                 retry_deadline_s=cfg.sinks.retry_deadline_s, metrics=metrics, group=group,
                                 on_fatal=on_fatal)
        d = cfg.decode
        threads = decode_threads(d.threads)
        fetcher = Fetcher.from_config(d, threads=threads)
        self.spec = merged_spec(cfg, self.models)
        self.decode_stage = DecodeStage(models=self.models, spec=self.spec,
                                        decode=lambda ref, kind, s: decode_media(ref, kind, s, fetcher),
                                        threads=threads, model_queues=self.model_queues,
                                        failures=self.failures,
                                        metrics=metrics, add_bytes=add_bytes)
        settle_after_startup()      # start-up objects out of the collector's way (worker/engine/gc_tuning.py)

    def start(self) -> None:
        for r in self.runners:
            r.start()
        self.writer.start()

    def stop(self) -> None:
        """Stop the stages (work still queued is dropped: its offsets were not committed)."""
        self.decode_stage.close()
        for r in self.runners:
            r.q.put(None)
        self.out_q.put(None)
        self.writer.join(timeout=10)
        closing: list[Sink | DeadLetterSink] = [*self.sinks, self.dlq]
        for s in closing:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's outcome
                log.warning("close of %s failed: %s", mask_url(getattr(s, "url", "?")), exc)
