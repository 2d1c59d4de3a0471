"""The streaming engine: the poll loop (poll_loop.py), offsets, parsing requests, the decode
and model stages, batching, sink writing (pipeline.py, stages.py), exactly-once commits, and
the runner that assembles them from the configuration (runner.py)."""
__all__: list[str] = []
