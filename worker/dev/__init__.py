"""Development helpers, never used by a deployed worker: a local single-node Kafka
(local_kafka.py, with its resource files in kafka/) and ``make demo`` (demo.py, demo_media.py)."""
__all__: list[str] = []
