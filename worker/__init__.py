"""sidepath's runtime, split by role: engine/ (the streaming engine), jobs/ (finite jobs),
cli/ (the command line), ops/ (metrics, health, HTTP, log format), dev/ (local Kafka, demo);
config.py and kafka_config.py are the settings every role reads."""
__all__: list[str] = []
