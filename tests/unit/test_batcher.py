from __future__ import annotations

import queue
import threading

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sidepath.worker.engine.batcher import Batcher, Chunk


def _one(x: int) -> Chunk[int]:
    """One message's item, as a decode thread hands it over (its units are its value here)."""
    return Chunk([x], x)


def _batcher(chunks, max_units, wait_s=0.0):
    q: queue.Queue = queue.Queue()
    for c in chunks:
        q.put(c)
    return q, Batcher(q, max_units=max_units, max_wait_s=wait_s, units=lambda x: x)


def test_packs_until_max_units():
    q, b = _batcher([_one(4) for _ in range(4)], 8)
    assert b.next_batch(0.1) == [4, 4]
    assert b.next_batch(0.1) == [4, 4]
    assert b.next_batch(0.01) == []


def test_oversized_item_goes_alone_and_overflow_waits():
    q, b = _batcher([_one(3), _one(20), _one(2)], 8)
    assert b.next_batch(0.1) == [3]      # 20 would overflow: held for the next call
    assert b.next_batch(0.1) == [20]
    assert b.next_batch(0.1) == [2]


def test_waits_for_more_items_within_max_wait_then_none_ends_the_stream():
    q, b = _batcher([_one(1)], 8, wait_s=2.0)
    threading.Timer(0.05, lambda: q.put(_one(2))).start()
    threading.Timer(0.1, lambda: q.put(None)).start()
    assert b.next_batch(0.5) == [1, 2]
    assert b.stopped
    assert b.next_batch(0.01) == []


def test_items_queued_before_the_end_still_come_out():
    c = Chunk([5, 5], 10)
    q, b = _batcher([c, None], 8)
    assert b.next_batch(0.1) == [5]
    assert b.next_batch(0.1) == [5]
    assert b.next_batch(0.1) == []
    assert b.stopped


def _drain(b: Batcher, max_units: int) -> list:
    """Every batch until the queue is empty, each within budget (or one oversized item alone)."""
    out = []
    while True:
        batch = b.next_batch(0.001)
        if not batch:
            return out
        assert len(batch) == 1 or sum(batch) <= max_units
        out.extend(batch)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=60), st.integers(1, 64))
def test_every_item_exactly_once_in_order_and_within_budget(items, max_units):
    q, b = _batcher([_one(i) for i in items], max_units)
    assert _drain(b, max_units) == items


def _chunks_of(items: list[int], max_units: int) -> list[Chunk[int]]:
    """As the decode stage hands items over: consecutive items, at most ``max_units`` a chunk
    (or one oversized item alone)."""
    out: list[Chunk[int]] = []
    for i in items:
        if not out or (out[-1] and out[-1].units + i > max_units):
            out.append(Chunk())
        out[-1].append(i)
        out[-1].units += i
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 40), st.lists(st.integers(1, 40), min_size=1, max_size=8)), max_size=30),
       st.integers(1, 64))
def test_chunks_are_taken_whole_or_unpacked_in_order(parts, max_units):
    """Chunks of one item mixed with bigger ones: every item once, in order, every batch within
    budget -- whether a chunk fits whole or has to be split."""
    q: queue.Queue = queue.Queue()
    expected = []
    for p in parts:
        for c in _chunks_of(p, max_units) if isinstance(p, list) else [_one(p)]:
            q.put(c)
        expected.extend(p if isinstance(p, list) else [p])
    b = Batcher(q, max_units=max_units, max_wait_s=0.0, units=lambda x: x)
    assert _drain(b, max_units) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(1, 40), max_size=8), max_size=20), st.integers(1, 64))
@example([[30, 30, 30]], 64)
def test_a_chunk_over_budget_is_unpacked_even_into_an_empty_batch(chunks, max_units):
    """A producer that ignores the budget (or an empty chunk) breaks neither the budget nor the order."""
    q, b = _batcher([Chunk(c, sum(c)) for c in chunks], max_units)
    assert _drain(b, max_units) == [i for c in chunks for i in c]


def test_a_chunk_that_fits_is_taken_whole_with_what_came_before():
    q, b = _batcher([_one(3), Chunk([2, 2], 4), _one(5)], 8)
    assert b.next_batch(0.1) == [3, 2, 2]       # 5 would overflow
    assert b.next_batch(0.1) == [5]
