"""One reliability scenario: a topic, a PostgreSQL results table, supervised worker processes, the checks.

A scenario sends requests and remembers where each landed (partition, offset)
and what its rows must say.  Workers write to PostgreSQL (upserts on
model, postid, seqid) and, beside it, to one JSONL file per worker slot, which
keeps every write: JSONL lines minus unique keys is the number of redelivered
results the upsert collapsed.  The checks, in ``verify``:

1. every input has exactly one row per model in the results table (a result
   or an error result), with the postid, status, stage and reason expected;
2. every error row has its dead letter (same stage), each reason one line;
3. no worker ended in a crash loop, and each stopped with exit code 0;
4. the group's committed offsets reach the log end, read with Kafka's own
   ``kafka-consumer-groups`` tool.

While it runs, ``poll()`` checks that no committed offset ever lies past a
result that is not in the table (commits only after results are durable).
"""
from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from sidepath.core.logs import librdkafka_logging
from sidepath.worker.dev.local_kafka import group_offsets
from tests.kafka_util import end_offsets
from tests.reliability.report import Row
from tests.reliability.supervisor import Supervisor
from tests.worker_util import worker_config, write_config_file

__all__ = ["Expect", "OK", "Item", "Sent", "Scenario", "good", "produce_tracked", "TABLE"]

log = logging.getLogger(__name__)

TABLE = "sidepath_results"          # the SQL sink's default table


@dataclass(frozen=True)
class Expect:
    """What one model's row for a request must say."""

    status: str = "ok"                  # ok | error | any
    stage: str = ""                     # for errors: parse | fetch | decode | infer | sink
    says: tuple[str, ...] = ()          # words the error message must contain (any case)


OK = Expect()


@dataclass(frozen=True)
class Item:
    """A message to send: its raw value (None: a Kafka null), the postid its row must carry, expectations."""

    value: bytes | None
    postid: str | None
    expect: Expect | dict[str, Expect] = OK
    label: str = ""


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    item: Item

    def expect_for(self, model: str) -> Expect:
        e = self.item.expect
        return e.get(model, OK) if isinstance(e, dict) else e


def good(requests: Iterable[dict[str, Any]], expect: Expect | dict[str, Expect] = OK) -> list[Item]:
    return [Item(json.dumps(r).encode(), str(r["postid"]), expect) for r in requests]


def produce_tracked(bootstrap: str, topic: str, items: Sequence[Item], *, partitions: int,
                    first: int = 0, conf: dict[str, Any] | None = None) -> list[Sent]:
    """Produce round-robin over the partitions; returns where each item landed."""
    p = Producer({**librdkafka_logging(), "bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                  **(conf or {})})
    coords: list[tuple[int, int] | None] = [None] * len(items)
    errors: list[str] = []

    def on_delivery(i: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                coords[i] = (msg.partition(), msg.offset())
        return done

    for i, it in enumerate(items):
        while True:
            try:
                p.produce(topic, it.value, partition=(first + i) % partitions, on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(120) == 0, "produce did not complete"
    assert not errors, errors[:3]
    # the payloads are not needed any more (a soak sends gigabytes)
    return [Sent(c[0], c[1], replace(it, value=None)) for c, it in zip(coords, items) if c is not None]


@dataclass
class Scenario:
    name: str
    tmp: Path
    bootstrap: str
    topic: str
    partitions: int
    db: Any                                   # tests.fixtures.postgres.PostgresDatabase
    file_roots: list[str]
    models: tuple[str, ...] = ("noop",)
    table: str = TABLE
    overrides: dict[str, Any] = field(default_factory=dict)
    report: Callable[[Row], None] | None = None
    patience: float = 1.0                     # every hang-detecting timeout is multiplied by this (soak: more)
    sent: list[Sent] = field(default_factory=list)
    supervisors: list[Supervisor] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)
    checks: int = 0

    def __post_init__(self) -> None:
        self.group = f"g-{self.topic}"
        self._probe: Consumer | None = None

    # ---- workers ---------------------------------------------------------------
    def config_path(self, slot: int, **extra: Any) -> Path:
        opts: dict[str, Any] = {
            "kafka.group_id": self.group, "kafka.session_timeout_ms": 6000,
            "model.name": self.models[0], "model.extra": list(self.models[1:]),
            "model.max_batch": 16, "model.max_wait_ms": 20,
            "sinks.urls": [self.db.url if self.table == TABLE else f"{self.db.url}?table={self.table}",
                           f"file://{self.tmp}/results-{slot}.jsonl"],
            "sinks.dead_letter": f"file://{self.tmp}/dead-letters-{slot}.jsonl",
            "decode.file_roots": self.file_roots, "decode.allow_hosts": ["127.0.0.1"],
            "engine.commit_interval_s": 0.5, "engine.shutdown_grace_s": 10.0,
            **self.overrides, **extra,
        }
        cfg = worker_config(self.tmp, self.bootstrap, self.topic, **opts)
        return write_config_file(self.tmp / f"worker-{slot}.toml", cfg)

    def supervise(self, slot: int = 0, *, max_restarts: int = 6, backoff_s: float = 0.5,
                  **extra: Any) -> Supervisor:
        """A supervised worker in ``slot`` (its own JSONL and dead-letter files); ``extra``: config overrides;
        ``backoff_s``: the first restart delay (doubling per consecutive failure, as in Kubernetes)."""
        sup = Supervisor(self.config_path(slot, **extra), self.tmp / f"worker-{slot}.log",
                         max_restarts=max_restarts, backoff_s=backoff_s).start()
        self.supervisors.append(sup)
        return sup

    def close(self) -> None:
        """Teardown: nothing may outlive the test (nor be restarted after it)."""
        for sup in self.supervisors:
            sup.signal_stop()
        for sup in self.supervisors:
            try:
                sup.stop(timeout=30)
            except AssertionError:
                pass                          # it was killed; the test has already failed
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    # ---- input -----------------------------------------------------------------
    def send(self, items: Sequence[Item], **conf: Any) -> list[Sent]:
        sent = produce_tracked(self.bootstrap, self.topic, items, partitions=self.partitions,
                               first=len(self.sent), conf=conf)
        self.sent += sent
        return sent

    # ---- observations ----------------------------------------------------------
    def rows(self) -> list[tuple[Any, ...]]:
        """(model, postid, seqid, status, stage, msg, partition, offset) of every row; [] before the table exists."""
        import psycopg

        try:
            return self.db.execute(f"SELECT model, postid, seqid, status, stage, msg, source_partition, "
                                   f"source_offset FROM {self.table}")
        except psycopg.errors.UndefinedTable:
            return []

    def row_count(self) -> int | None:
        import psycopg

        try:
            return int(self.db.execute(f"SELECT count(*) FROM {self.table}")[0][0])
        except psycopg.errors.UndefinedTable:
            return 0
        except psycopg.OperationalError:
            return None                       # the database is away (a scenario stopped it)

    def jsonl(self) -> list[dict[str, Any]]:
        return _lines(sorted(self.tmp.glob("results-*.jsonl")))

    def jsonl_count(self) -> int:
        n = 0
        for p in self.tmp.glob("results-*.jsonl"):
            with open(p, "rb") as fh:
                n += sum(1 for line in fh if line.endswith(b"\n"))
        return n

    def letters(self) -> list[dict[str, Any]]:
        return _lines(sorted(self.tmp.glob("dead-letters-*.jsonl")))

    def committed(self) -> dict[int, int] | None:
        """The group's committed offset per partition (None while the broker is away).

        Asked through a consumer that never joins the group: the admin client's
        ListConsumerGroupOffsets crashes the process (librdkafka 2.x, a NULL
        consumer group in rd_kafka_handle_OffsetFetch) when the coordinator
        answers NOT_COORDINATOR, as it does while a broker restarts.
        """
        if self._probe is None:
            self._probe = Consumer({**librdkafka_logging(), "bootstrap.servers": self.bootstrap, "group.id": self.group,
                                    "enable.auto.commit": False, "socket.timeout.ms": 5000})
        try:
            tps = self._probe.committed([TopicPartition(self.topic, p) for p in range(self.partitions)], timeout=10)
        except KafkaException:
            return None
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0 and tp.error is None}

    def ends(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for s in self.sent:
            out[s.partition] = max(out.get(s.partition, 0), s.offset + 1)
        return out

    def expected_rows(self) -> int:
        return len(self.sent) * len(self.models)

    # ---- the invariant checked all along ---------------------------------------
    def check_commits_behind_results(self) -> bool:
        """No committed offset lies past a message whose rows are not all in the table.

        Committed offsets are read first, rows second: rows are never deleted,
        so a row missing now was missing when the commit was read.
        """
        committed = self.committed()
        if committed is None:
            return False
        import psycopg

        try:
            have = {(r[6], r[7], r[0]) for r in self.rows()}
        except psycopg.OperationalError:
            return False
        missing = [(s.partition, s.offset, m) for s in self.sent if s.offset < committed.get(s.partition, 0)
                   for m in self.models if (s.partition, s.offset, m) not in have]
        assert not missing, f"{self.name}: committed past results that are not in the table: {missing[:10]} " \
                            f"(committed {committed})"
        self.checks += 1
        return True

    def _assert_no_crash_loop(self) -> None:
        for sup in self.supervisors:
            assert not sup.crash_loop, f"{self.name}: crash loop: {sup.describe()}\n{sup.log_tail()}"

    def wait_until(self, pred: Callable[[], bool], timeout: float, what: str, check_every_s: float = 1.0) -> None:
        """Poll ``pred``; meanwhile check the commit invariant and crash loops. A timeout means a hang."""
        timeout *= self.patience
        check_every_s = max(check_every_s, len(self.sent) / 20_000)     # reading every row takes a while
        deadline = time.monotonic() + timeout
        last_check = 0.0
        while True:
            self._assert_no_crash_loop()
            if time.monotonic() - last_check >= check_every_s:
                self.check_commits_behind_results()
                last_check = time.monotonic()
            if pred():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {s.log_path.name}: {s.describe()}\n{s.log_tail(1500)}"
                                  for s in self.supervisors)
                raise TimeoutError(f"{self.name}: timed out after {timeout:.0f} s waiting for {what}; "
                                   f"rows {self.row_count()}/{self.expected_rows()}, committed {self.committed()}, "
                                   f"ends {self.ends()}\n{tails}")
            time.sleep(0.1)

    def wait_rows(self, n: int, timeout: float = 120) -> None:
        self.wait_until(lambda: (self.row_count() or 0) >= n, timeout, f"{n} rows")

    def wait_done(self, timeout: float = 180) -> None:
        """Every row written and every partition committed to its end."""
        ends = self.ends()

        def done() -> bool:
            if (self.row_count() or 0) < self.expected_rows():
                return False
            c = self.committed()
            return c is not None and all(c.get(p, -1) == e for p, e in ends.items())

        self.wait_until(done, timeout, "all rows and commits at the log end")

    def wait_flowing(self, since: float, timeout: float = 120) -> float:
        """Seconds from ``since`` until results are being written again (the JSONL grows)."""
        base = self.jsonl_count()
        flowed = [False]

        def flowing() -> bool:
            flowed[0] = self.jsonl_count() > base
            return flowed[0] or (self.row_count() or 0) >= self.expected_rows()   # or nothing was left to do

        self.wait_until(flowing, timeout, "results to flow again", check_every_s=2.0)
        took = time.monotonic() - since
        if flowed[0]:
            self.recoveries.append(took)
        return took

    def wait_commit_advance(self, since: float, timeout: float = 120) -> float:
        """Seconds from ``since`` until the group commits past where it stood."""
        base: dict[int, int] | None = None
        while base is None:
            base = self.committed()
            if base is None:
                time.sleep(0.2)
                assert time.monotonic() - since < timeout, "broker did not answer"
        ends = self.ends()

        def advanced() -> bool:
            c = self.committed()
            return c is not None and (c != base or all(c.get(p, -1) == e for p, e in ends.items()))

        self.wait_until(advanced, timeout, "commits to advance")
        took = time.monotonic() - since
        self.recoveries.append(took)
        return took

    def stop_all(self, timeout: float = 60) -> list[int]:
        codes = [sup.stop(timeout) for sup in self.supervisors if sup.running()]
        assert all(c == 0 for c in codes), f"{self.name}: stop exit codes {codes}"
        return codes

    # ---- the final checks ------------------------------------------------------
    def verify(self, *, restarts: int | Callable[[int], bool] = 0, notes: str = "") -> Row:
        """Checks 1-4 of the module docstring; records and returns the report row."""
        self._assert_no_crash_loop()
        self.check_commits_behind_results()
        rows = self.rows()
        by_src: dict[tuple[int, int], list[tuple[Any, ...]]] = defaultdict(list)
        for r in rows:
            by_src[(r[6], r[7])].append(r)
        problems: list[str] = []
        for s in self.sent:
            got = by_src.pop((s.partition, s.offset), [])
            if sorted(r[0] for r in got) != sorted(self.models):
                problems.append(f"{s.item.label or s.item.postid} @{s.partition}/{s.offset}: rows for models "
                                f"{sorted(r[0] for r in got)}, want one each of {sorted(self.models)}")
                continue
            for model, postid, _seqid, status, stage, msg, *_ in got:
                exp = s.expect_for(model)
                what = f"{s.item.label or s.item.postid} ({model})"
                if s.item.postid is not None and postid != s.item.postid:
                    problems.append(f"{what}: row has postid {postid!r}")
                if exp.status != "any" and status != exp.status:
                    problems.append(f"{what}: status {status} ({stage}: {msg}), want {exp.status}")
                if exp.stage and status == "error" and stage != exp.stage:
                    problems.append(f"{what}: stage {stage} ({msg}), want {exp.stage}")
                if status == "error" and (not msg.strip() or "\n" in msg):
                    problems.append(f"{what}: error message is not one line: {msg!r}")
                lost = [w for w in exp.says if w.lower() not in msg.lower()]
                if status == "error" and lost:
                    problems.append(f"{what}: message {msg!r} does not say {lost}")
        if by_src:
            problems.append(f"rows for messages never sent: {list(by_src)[:5]}")
        assert not problems, f"{self.name}: {len(problems)} problem(s):\n" + "\n".join(problems[:30])
        assert len(rows) == self.expected_rows()

        letters = self.letters()
        letter_keys = {(d["source"]["partition"], d["source"]["offset"], d["stage"]) for d in letters}
        errors = {(r[6], r[7], r[4]) for r in rows if r[3] == "error"}
        missing = sorted(errors - letter_keys)[:10]
        assert errors <= letter_keys, f"{self.name}: error rows without a dead letter: {missing}"
        bad_src = {(p, o) for p, o, _ in letter_keys} - {(p, o) for p, o, _ in errors}
        assert not bad_src, f"{self.name}: dead letters for messages whose rows are all ok: {sorted(bad_src)[:10]}"
        for d in letters:
            assert d["error"].strip() and "\n" not in d["error"], d

        lines = self.jsonl()
        keys = {(d["model"], d["postid"], d["seqid"]) for d in lines}
        assert keys == {(r[0], r[1], r[2]) for r in rows}, f"{self.name}: the JSONL sink and the table disagree"

        self._assert_no_crash_loop()
        n_restarts = sum(s.restarts for s in self.supervisors)
        ok_restarts = restarts(n_restarts) if callable(restarts) else n_restarts == restarts
        assert ok_restarts, f"{self.name}: {n_restarts} restarts: " + "; ".join(s.describe() for s in self.supervisors)

        ends = end_offsets(self.bootstrap, self.topic)  # the real log end
        tool = group_offsets(self.bootstrap, self.group)  # Kafka's own tool
        got_commits = {p: v[0] for (t, p), v in tool.items() if t == self.topic}
        assert got_commits == ends, f"{self.name}: kafka-consumer-groups says {tool}, log end {ends}"

        rec = f"max {max(self.recoveries):.1f} s over {len(self.recoveries)}" if self.recoveries else "-"
        row = Row(
            self.name,
            len(self.sent),
            len(self.models),
            len(rows),
            len(lines),
            len(lines) - len(keys),
            len(
                {
                    (p, o, d["model"], d["stage"])
                    for d in letters
                    for p, o in [(d["source"]["partition"], d["source"]["offset"])]
                }
            ),
            n_restarts,
            rec,
            notes,
        )
        log.info("%s: %s", self.name, row)
        if self.report is not None:
            self.report(row)
        return row


def _lines(paths: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for p in paths:
        with open(p, "rb") as fh:
            for line in fh:
                if line.endswith(b"\n"):
                    out.append(json.loads(line))
    return out
