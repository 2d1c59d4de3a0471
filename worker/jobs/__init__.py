"""Finite jobs on the same engine: backfill (files or SQL rows), drain (a topic into durable
sinks), lag (per-group lag report), produce (requests onto a topic), and ``--start-at``
parsing (start_at.py)."""
__all__: list[str] = []
