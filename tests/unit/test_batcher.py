from __future__ import annotations

import queue
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from sidepath.worker.engine.batcher import STOP, Batcher, Chunk


def _batcher(items, max_units, wait_s=0.0):
    q: queue.Queue = queue.Queue()
    for i in items:
        q.put(i)
    return q, Batcher(q, max_units=max_units, max_wait_s=wait_s, units=lambda x: x)


def test_packs_until_max_units():
    q, b = _batcher([4, 4, 4, 4], 8)
    assert b.next_batch(0.1) == [4, 4]
    assert b.next_batch(0.1) == [4, 4]
    assert b.next_batch(0.01) == []


def test_oversized_item_goes_alone_and_overflow_waits():
    q, b = _batcher([3, 20, 2], 8)
    assert b.next_batch(0.1) == [3]      # 20 would overflow: held for the next call
    assert b.next_batch(0.1) == [20]
    assert b.next_batch(0.1) == [2]


def test_waits_for_more_items_within_max_wait():
    q, b = _batcher([1], 8, wait_s=2.0)
    threading.Timer(0.05, lambda: q.put(2)).start()
    threading.Timer(0.1, lambda: q.put(STOP)).start()
    assert b.next_batch(0.5) == [1, 2]
    assert b.stopped


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), max_size=60), st.integers(1, 64))
def test_every_item_exactly_once_in_order_and_within_budget(items, max_units):
    q, b = _batcher(items, max_units)
    assert _drain(b, max_units) == items


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
@given(st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=8), max_size=20), st.integers(1, 64))
def test_lists_on_the_queue_are_unpacked_in_order(chunks, max_units):
    """The engine hands over one list per consume() batch; items come out as if put one by one."""
    q, b = _batcher([c if len(c) > 1 else c[0] for c in chunks], max_units)
    assert _drain(b, max_units) == [i for c in chunks for i in c]


def _chunks_of(items: list[int], max_units: int) -> list[Chunk]:
    """As the decode stage hands items over: consecutive items, at most ``max_units`` a chunk
    (or one oversized item alone)."""
    out: list[Chunk] = []
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
    """Chunks (with their units counted) mixed with single items: every item once, in order,
    every batch within budget -- whether a chunk fits whole or has to be split."""
    q: queue.Queue = queue.Queue()
    expected = []
    for p in parts:
        if isinstance(p, list):
            for c in _chunks_of(p, max_units):
                q.put(c)
            expected.extend(p)
        else:
            q.put(p)
            expected.append(p)
    b = Batcher(q, max_units=max_units, max_wait_s=0.0, units=lambda x: x)
    assert _drain(b, max_units) == expected


def test_a_chunk_that_fits_is_taken_whole_with_what_came_before():
    q: queue.Queue = queue.Queue()
    c = Chunk()
    c.extend([2, 2])
    c.units = 4
    q.put(3)
    q.put(c)
    q.put(5)
    b = Batcher(q, max_units=8, max_wait_s=0.0, units=lambda x: x)
    assert b.next_batch(0.1) == [3, 2, 2]       # 5 would overflow
    assert b.next_batch(0.1) == [5]
