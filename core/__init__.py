"""The bottom layer every package may import: errors (errors.py), secrets out of logs and
messages (masking.py), ``${VAR}`` expansion from the environment (env.py) and log helpers
(logs.py: a throttle for repeated conditions, librdkafka's log settings).  It imports
nothing of sidepath outside core/; tests/unit/test_layers.py checks that."""
__all__: list[str] = []
