"""After start-up the collector leaves start-up objects alone and runs less often (worker/engine/gc_tuning.py)."""
from __future__ import annotations

import gc

from sidepath.worker.engine.gc_tuning import YOUNG_THRESHOLD, settle_after_startup


def test_start_up_objects_are_frozen_and_young_collections_are_rarer():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)                        # Python's defaults; other tests may have settled
    try:
        survivor = [object() for _ in range(1000)]       # alive at the call: frozen
        settle_after_startup()
        assert gc.get_freeze_count() >= len(survivor)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 20, 20)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
