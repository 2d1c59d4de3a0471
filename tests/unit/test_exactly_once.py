"""Which results go into which transaction (pure logic; the broker tests are in integration/)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.core.errors import TransientSinkError
from sidepath.sinks.base import Result
from sidepath.sinks.kafka_transaction import TransactionOutcomeUnknown
from sidepath.worker.engine.exactly_once import HeldResults
from sidepath.worker.engine.offsets import OffsetTracker


class Recorder:
    """Stands in for the transactional producer: records each transaction, or aborts it."""

    def __init__(self) -> None:
        self.transactions: list[tuple[list[str], dict]] = []
        self.fail = False
        self.stuck = False          # the call hangs; whether it landed shows in the committed offsets
        self.lands = False

    def ensure_open(self) -> None:
        """A fresh producer: nothing to do here."""

    def commit(self, results, offsets, group_metadata) -> None:
        if self.fail:
            raise TransientSinkError("broker away")
        if self.stuck:
            if self.lands:
                self.transactions.append(([r.postid for r in results], {(t.topic, t.partition): t.offset
                                                                        for t in offsets}))
            raise TransactionOutcomeUnknown("abandoned")
        self.transactions.append(([r.postid for r in results], {(t.topic, t.partition): t.offset for t in offsets}))


def _result(tp, off) -> Result:
    return Result(f"{tp[1]}:{off}", "u", "1", "m", "1")


def test_only_results_below_the_committed_offset_go_in_and_an_abort_keeps_them():
    rec = Recorder()
    held = HeldResults(rec, lambda tps: {})
    tp = ("t", 0)
    for off in (0, 1, 3, 4):           # offset 2 is still being worked on
        held.hold(tp, off, [_result(tp, off)])
    rec.fail = True
    assert not held.commit({tp: 2}, None)
    assert held.messages == 4           # nothing lost
    rec.fail = False
    assert held.commit({tp: 2}, None)
    assert rec.transactions == [(["0:0", "0:1"], {tp: 2})]
    held.hold(tp, 2, [_result(tp, 2)])
    assert held.commit({tp: 5}, None)
    assert rec.transactions[-1] == (["0:2", "0:3", "0:4"], {tp: 5})
    assert held.messages == 0


def test_dropped_partitions_are_never_written():
    rec = Recorder()
    held = HeldResults(rec, lambda tps: {})
    held.hold(("t", 0), 0, [_result(("t", 0), 0)])
    held.hold(("t", 1), 0, [_result(("t", 1), 0)])
    assert held.drop([("t", 1)]) == 1
    assert held.commit({("t", 0): 1, ("t", 1): 1}, None)
    assert rec.transactions == [(["0:0"], {("t", 0): 1, ("t", 1): 1})]


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(list(range(12))), commit_after=st.sets(st.integers(0, 11)))
def test_every_result_is_written_once_and_never_above_its_commit(order, commit_after):
    """Any completion order, commits at any moments: each result in exactly one transaction, and
    only in a transaction whose committed offset is above it."""
    rec = Recorder()
    held = HeldResults(rec, lambda tps: {})
    tracker = OffsetTracker()
    tp = ("t", 0)
    tracker.assign(tp)
    epoch = 0
    for off in range(12):
        epoch = tracker.add(tp, off)
    for i, off in enumerate(order):
        tracker.done(tp, off, epoch)
        held.hold(tp, off, [_result(tp, off)])
        if i in commit_after or i == len(order) - 1:
            offsets = tracker.committable({tp: 12})
            if offsets and held.commit(offsets, None):
                tracker.mark_committed(tp, offsets[tp])
    written = [pid for pids, _ in rec.transactions for pid in pids]
    assert sorted(written) == sorted(f"0:{o}" for o in range(12))
    for pids, offs in rec.transactions:
        assert all(int(p.split(":")[1]) < offs[tp] for p in pids)


def test_an_abandoned_transaction_is_settled_from_the_committed_offsets_before_anything_else():
    tp = ("t", 0)
    for lands in (True, False):
        rec = Recorder()
        committed = {tp: None}
        held = HeldResults(rec, lambda tps, committed=committed: dict(committed))
        for off in range(4):
            held.hold(tp, off, [_result(tp, off)])
        rec.stuck, rec.lands = True, lands
        assert not held.commit({tp: 2}, None)
        if lands:
            committed[tp] = 2            # the stuck transaction did commit its offsets (and results)
        rec.stuck = False
        assert held.commit({tp: 4}, None)
        written = [p for pids, _ in rec.transactions for p in pids]
        assert sorted(written) == ["0:0", "0:1", "0:2", "0:3"], (lands, rec.transactions)   # once each
        assert held.messages == 0
