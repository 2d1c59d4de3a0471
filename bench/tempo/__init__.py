"""Tempo & beats benchmark: a ground-truth corpus rendered offline from MIDI, scored
with mir_eval against librosa in the same run.  Run ``python -m bench.tempo``."""
