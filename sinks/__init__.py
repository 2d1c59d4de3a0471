"""Where results go: Kafka topics, SQL tables and JSONL files, opened from URLs.

    from sidepath.sinks import open_sink, open_dead_letter_sink
    sink = open_sink("postgresql+psycopg://sidepath:${PGPASSWORD}@db/results")
    rejected = sink.write(results)      # durable on return; see base.py for the contract

Implementations live in their own modules (jsonl, sql, kafka) and are loaded
on first use, so that importing this package does not import SQLAlchemy or
librdkafka.
"""
from __future__ import annotations

from sidepath.sinks.base import DeadLetter, DeadLetterSink, Rejected, Result, Sink, SourceRef, utc_now
from sidepath.sinks.jsonl import read_letters, read_results
from sidepath.sinks.registry import dead_letter_schemes, open_dead_letter_sink, open_sink, sink_schemes

__all__ = [
    "open_sink", "open_dead_letter_sink", "sink_schemes", "dead_letter_schemes",
    "Sink", "DeadLetterSink", "Result", "DeadLetter", "Rejected", "SourceRef", "utc_now",
    "read_results", "read_letters",
]
