"""The frame plan: which decoded timestamps are kept (pure logic, property-tested)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sidepath.decoders.sampling import FramePlan


def run_plan(times, *, fps=1.0, max_frames=32, duration=None, max_duration=3600.0):
    plan = FramePlan(fps=fps, max_frames=max_frames, duration_s=duration, max_duration_s=max_duration)
    for t in times:
        plan.offer(t, lambda t=t: t)
    return [t for t, _ in plan.result()]


def cfr(seconds, fps):
    return [i / fps for i in range(int(seconds * fps))]


def test_one_frame_per_second_at_whole_seconds():
    assert run_plan(cfr(10, 30), duration=10) == [float(i) for i in range(10)]


def test_long_video_is_spread_evenly_over_its_duration():
    kept = run_plan(cfr(100, 25), max_frames=10, duration=100)
    assert kept == [float(i) for i in range(0, 100, 10)]


def test_vfr_gap_yields_one_frame_with_its_real_time():
    times = [0.0, 0.04, 0.08, 3.5, 3.54, 5.0]
    assert run_plan(times, duration=5.04) == [0.0, 3.5, 5.0]


def test_unknown_duration_still_spreads_over_the_whole_video():
    kept = run_plan(cfr(200, 10), max_frames=8, duration=None)
    assert len(kept) == 8
    assert kept[0] == 0.0 and kept[-1] > 150           # reaches the end, not only the first 8 s
    assert np.all(np.diff(kept) > 0)


def test_duration_that_is_too_short_does_not_cut_the_video():
    kept = run_plan(cfr(60, 10), max_frames=100, duration=10)
    assert kept[-1] >= 59


def test_max_duration_caps_the_sampling():
    kept = run_plan(cfr(30, 10), duration=30, max_duration=5)
    assert kept == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_wants_before_tells_whether_a_gop_holds_a_target():
    plan = FramePlan(fps=1, max_frames=32, duration_s=10, max_duration_s=3600)
    assert plan.wants_before(0.5)          # target 0 lies in [0, 0.5)
    plan.offer(0.0, lambda: "f0")
    assert not plan.wants_before(1.0)      # next target 1.0 belongs to the GOP starting at 1.0
    assert plan.wants_before(1.5) and plan.reaches(1.0) and not plan.reaches(0.9)


def test_take_and_skip_to_serve_a_whole_gop_with_its_keyframe():
    plan = FramePlan(fps=1, max_frames=32, duration_s=20, max_duration_s=3600)
    plan.take(0.0, lambda: "k0")
    plan.skip_to(8.0)                      # the GOP [0, 8) is served by its keyframe
    assert plan.next_t == 8.0
    plan.take(8.0, lambda: "k8")
    assert [t for t, _ in plan.result()] == [0.0, 8.0]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="fps"):
        FramePlan(fps=0, max_frames=1, duration_s=None, max_duration_s=1)
    with pytest.raises(ValueError, match="max_frames"):
        FramePlan(fps=1, max_frames=0, duration_s=None, max_duration_s=1)


def oracle(times, fps):
    """First frame at or after each grid point k / fps (a frame up to 1 ms early counts, like the
    plan's tolerance), duplicates dropped: written the obvious way."""
    out = []
    k = 0
    while k / fps <= times[-1] + 1e-3:
        later = [t for t in times if t >= k / fps - 1e-3]
        if later and (not out or later[0] > out[-1]):
            out.append(later[0])
        k += 1
    return out


@example(gaps=[0.99999], fps=1.0, max_frames=2, duration_known=True)   # a frame 10 us before a grid point
@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.001, max_value=3.0), min_size=1, max_size=400),
    fps=st.sampled_from([0.25, 0.5, 1.0, 2.0, 5.0]),
    max_frames=st.integers(min_value=1, max_value=40),
    duration_known=st.booleans(),
)
def test_plan_properties(gaps, fps, max_frames, duration_known):
    times = np.cumsum([0.0] + gaps).tolist()
    duration = times[-1] + 0.04 if duration_known else None
    kept = run_plan(times, fps=fps, max_frames=max_frames, duration=duration)
    assert 1 <= len(kept) <= max_frames
    assert kept[0] == 0.0                                  # the first frame always counts
    assert all(t in times for t in kept)                   # real timestamps only, never invented
    assert all(b > a for a, b in zip(kept, kept[1:]))      # no duplicates, in order
    assert len(kept) <= int(times[-1] * fps + 1e-3) + 1    # never more than the asked rate gives
    if duration_known and duration * fps <= max_frames:
        assert kept == oracle(times, fps)                  # exactly the frames at the grid points
