"""BatchHistogram exports exactly what prometheus_client's Histogram would for the same values."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sidepath.worker.ops.metrics import BatchHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_values = st.floats(min_value=0, max_value=500, allow_nan=False) | st.sampled_from(BUCKETS)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value
            for m in registry.collect() for s in m.samples if not s.name.endswith("_created")}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_values, max_size=20), max_size=6))
def test_same_buckets_count_and_sum_as_prometheus_histogram(batches):
    ours_r, theirs_r = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("lat_seconds", "doc", buckets=BUCKETS, registry=ours_r)
    theirs = Histogram("lat_seconds", "doc", buckets=BUCKETS, registry=theirs_r)
    for batch in batches:
        ours.observe_many(batch)
        for v in batch:
            theirs.observe(v)
    got, want = _samples(ours_r, "lat_seconds"), _samples(theirs_r, "lat_seconds")
    assert got.keys() == want.keys()
    for k in want:
        assert math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-9), k


def test_exposition_has_the_usual_series():
    r = CollectorRegistry()
    h = BatchHistogram("sidepath_message_duration_seconds", "doc", buckets=BUCKETS, registry=r)
    h.observe_many([0.3])
    h.observe_many([0.001, 200.0])
    text = generate_latest(r).decode()
    assert 'sidepath_message_duration_seconds_bucket{le="0.5"} 2.0' in text
    assert 'sidepath_message_duration_seconds_bucket{le="+Inf"} 3.0' in text
    assert r.get_sample_value("sidepath_message_duration_seconds_count") == 3
    assert math.isclose(r.get_sample_value("sidepath_message_duration_seconds_sum"), 200.301)
