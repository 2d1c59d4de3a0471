"""sidepath's engine: config, CLI, Kafka source, offsets, batching, stages, metrics."""
__all__: list[str] = []
