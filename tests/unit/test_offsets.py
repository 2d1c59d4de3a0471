"""The offset tracker never commits past an unfinished offset, whatever the completion order."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.worker.engine.offsets import OffsetTracker

TP = ("t", 0)


def test_commits_lowest_unfinished_offset():
    t = OffsetTracker()
    e = t.assign(TP)
    for o in (10, 11, 12, 15):          # 13, 14 never taken: a compaction gap
        t.add(TP, o)
    t.done(TP, 11, e)
    t.done(TP, 12, e)
    assert t.committable() == {TP: 10}
    t.done(TP, 10, e)
    assert t.committable() == {TP: 15}   # steps over the gap: only taken offsets are waited for
    t.done(TP, 15, e)
    assert t.committable() == {TP: 16}
    assert t.committable({TP: 18}) == {TP: 18}   # drained: the consumer position (past markers)


def test_nothing_to_commit_twice():
    t = OffsetTracker()
    e = t.assign(TP)
    t.add(TP, 0)
    t.done(TP, 0, e)
    t.mark_committed(TP, 1)
    assert t.committable() == {}


def test_stale_epoch_completion_is_ignored():
    t = OffsetTracker()
    old = t.assign(TP)
    t.add(TP, 5)
    t.revoke(TP)
    new = t.assign(TP)
    t.add(TP, 5)
    assert not t.done(TP, 5, old)
    assert t.committable() == {TP: 5}
    assert t.done(TP, 5, new)


def test_revoked_partition_is_not_committed():
    t = OffsetTracker()
    e = t.assign(TP)
    t.add(TP, 1)
    assert t.revoke(TP) == 1
    assert not t.done(TP, 1, e)
    assert t.committable() == {}


@settings(max_examples=300, deadline=None)
@given(data=st.data(),
       offsets=st.lists(st.integers(0, 400), min_size=1, max_size=80, unique=True).map(sorted))
def test_never_commits_past_an_unfinished_offset(data, offsets):
    t = OffsetTracker()
    epoch = t.assign(TP)
    order = data.draw(st.permutations(offsets))
    taken: list[int] = []
    done: set[int] = set()
    committed = None
    it = iter(offsets)
    for o in order:
        # take a few more (in offset order, as a consumer does), then finish one taken offset
        for _ in range(data.draw(st.integers(0, 3))):
            nxt = next(it, None)
            if nxt is not None:
                t.add(TP, nxt)
                taken.append(nxt)
        if o not in taken:
            continue
        if data.draw(st.booleans()) and o not in done:
            t.done(TP, o, epoch)
            done.add(o)
        if data.draw(st.integers(0, 9)) == 0:   # occasionally a revoke + re-assign
            t.revoke(TP)
            epoch = t.assign(TP, committed)
            taken = [x for x in taken if x in done]  # unfinished ones are redelivered later; model that
            rest = [x for x in offsets if x not in done and x not in taken]
            it = iter(sorted(rest))
            continue
        c = t.committable().get(TP)
        if c is not None:
            unfinished = [x for x in taken if x not in done]
            assert all(c <= x for x in unfinished), (c, unfinished)
            assert committed is None or c > committed
            t.mark_committed(TP, c)
            committed = c


def test_failed_async_commit_is_sent_again():
    t = OffsetTracker()
    e = t.assign(TP)
    t.add(TP, 0)
    t.done(TP, 0, e)
    t.mark_committed(TP, 1)
    assert t.committable() == {}
    t.commit_failed(TP, 1)
    assert t.committable() == {TP: 1}
