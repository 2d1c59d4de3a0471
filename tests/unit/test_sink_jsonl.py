"""The JSONL sinks: durable whole lines, repair after a crash, rotation, reader-side dedupe."""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sidepath.core.errors import ConfigError, TransientSinkError
from sidepath.sinks import open_dead_letter_sink, open_sink, read_letters, read_results
from sidepath.sinks.base import DeadLetter, Result, SourceRef
from sidepath.sinks.jsonl import path_of_file_url, read_lines
from sidepath.sinks.jsonl_file import AppendOnlyFile, segments


def result(i: int, *, model: str = "age", msg: str = "", payload: str = "") -> Result:
    return Result(f"p{i}", f"u{i}", f"s{i}", model, "1.0", msg, None if msg else {"age": i, "pad": payload},
                  SourceRef("posts", i % 3, 1000 + i), {"infer": 1.5})


def lines_of(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n")
    return [json.loads(line) for line in raw.splitlines()]


def test_write_returns_with_every_line_in_the_file(tmp_path):
    sink = open_sink(f"file://{tmp_path}/out/results.jsonl")
    batch = [result(i) for i in range(5)]
    assert sink.write(batch) == []
    on_disk = lines_of(tmp_path / "out" / "results.jsonl")      # read through a separate open
    assert on_disk == [r.to_dict() for r in batch]
    sink.close()


def test_redelivered_result_appends_a_line_and_reader_keeps_the_last(tmp_path):
    path = tmp_path / "r.jsonl"
    sink = open_sink(f"file://{path}")
    first, again = result(1), result(1, msg="fetch failed: HTTP 404")
    sink.write([first, result(2)])
    sink.write([again])
    sink.close()
    assert len(lines_of(path)) == 3
    view = read_results(path)
    assert set(view) == {("age", "p1", "s1"), ("age", "p2", "s2")}
    assert view[("age", "p1", "s1")]["msg"] == "fetch failed: HTTP 404"


def test_torn_last_line_is_cut_off_when_the_file_is_opened_again(tmp_path):
    path = tmp_path / "r.jsonl"
    sink = open_sink(f"file://{path}")
    sink.write([result(1), result(2)])
    sink.close()
    whole = path.read_bytes()
    with open(path, "ab") as fh:                    # what a crash in the middle of a write leaves
        fh.write(b'{"postid":"p3","uid":"u3","se')
    sink = open_sink(f"file://{path}")
    assert path.read_bytes() == whole
    assert sink.file.repaired_bytes == len(b'{"postid":"p3","uid":"u3","se')
    sink.write([result(3)])
    sink.close()
    assert [d["postid"] for d in lines_of(path)] == ["p1", "p2", "p3"]


def test_file_holding_only_a_fragment_is_cut_to_empty(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"postid": "half')
    sink = open_sink(f"file://{path}")
    assert path.read_bytes() == b""
    sink.write([result(1)])
    sink.close()
    assert [d["postid"] for d in lines_of(path)] == ["p1"]


_WRITER = textwrap.dedent("""
    import resource, signal, sys
    from sidepath.sinks import open_sink
    from sidepath.sinks.base import Result
    from sidepath.core.errors import TransientSinkError
    limit = int(sys.argv[2])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sink = open_sink("file://" + sys.argv[1])
    for b in range(10_000):
        batch = [Result(f"p{b}-{i}", "u", str(i), "age", "1", results={"pad": "x" * 300}) for i in range(200)]
        try:
            sink.write(batch)
        except TransientSinkError as exc:
            print("transient", exc, flush=True)
            break
        print(b, flush=True)
""")


def _acked(stdout_lines: list[str]) -> set[str]:
    return {f"p{b}-{i}" for b in (int(x) for x in stdout_lines if x.strip().isdigit()) for i in range(200)}


def test_batches_acknowledged_before_kill_9_are_all_there_and_whole(tmp_path):
    path = tmp_path / "r.jsonl"
    child = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), "0"], stdout=subprocess.PIPE, text=True)
    seen: list[str] = []
    assert child.stdout is not None
    for line in child.stdout:
        seen.append(line)
        if len(seen) == 8:
            child.send_signal(signal.SIGKILL)        # in the middle of the next batch
            break
    seen += child.stdout.read().splitlines()
    child.wait()
    assert child.returncode == -signal.SIGKILL
    sink = open_sink(f"file://{path}")               # what a restarted worker does
    sink.close()
    stored = {d["postid"] for d in lines_of(path)}
    assert _acked(seen) <= stored
    assert len(_acked(seen)) >= 8 * 200


def test_disk_full_half_way_through_a_batch_is_cut_back_to_whole_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    limit = 200_000                                  # RLIMIT_FSIZE: writes past this fail with EFBIG
    out = subprocess.run([sys.executable, "-c", _WRITER, str(path), str(limit)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "transient" in out.stdout and "File too large" in out.stdout
    stored = lines_of(path)                          # ends in a newline, every line parses
    assert {d["postid"] for d in stored} == _acked(out.stdout.splitlines())
    assert path.stat().st_size < limit


def test_size_rotation_keeps_batches_whole_and_reader_sees_every_segment(tmp_path):
    path = tmp_path / "r.jsonl"
    sink = open_sink(f"file://{path}?rotate_bytes=3KiB")
    batches = [[result(b * 10 + i) for i in range(5)] for b in range(8)]
    for batch in batches:
        sink.write(batch)
    sink.close()
    segs = segments(path)
    assert len(segs) > 2 and segs[-1] == path
    for seg in segs:
        ids = [int(d["postid"][1:]) for d in lines_of(seg)]
        assert len(ids) % 5 == 0                     # a batch never spans two files
        if len(ids) > 5:
            assert seg.stat().st_size <= 3 * 1024
    assert len(read_results(path)) == 40
    assert [d["postid"] for d in read_lines(path)] == [r.postid for batch in batches for r in batch]


def test_time_rotation_starts_a_new_file_once_the_live_one_is_old(tmp_path):
    now = [1_000.0]
    f = AppendOnlyFile(tmp_path / "r.jsonl", rotate_s=60, clock=lambda: now[0])
    f.append([b'{"n":1}\n'])
    now[0] += 59
    f.append([b'{"n":2}\n'])
    assert len(segments(tmp_path / "r.jsonl")) == 1
    now[0] += 2
    f.append([b'{"n":3}\n'])
    f.close()
    segs = segments(tmp_path / "r.jsonl")
    assert [s.read_bytes() for s in segs] == [b'{"n":1}\n{"n":2}\n', b'{"n":3}\n']


def test_a_second_writer_on_the_same_file_is_refused(tmp_path):
    sink = open_sink(f"file://{tmp_path}/r.jsonl")
    with pytest.raises(ConfigError, match="another process is writing this file"):
        open_sink(f"file://{tmp_path}/r.jsonl")
    sink.close()
    open_sink(f"file://{tmp_path}/r.jsonl").close()      # free again once closed


def test_dead_letters_keep_the_original_bytes_and_the_failure(tmp_path):
    dlq = open_dead_letter_sink(f"file://{tmp_path}/dlq.jsonl")
    letter = DeadLetter(b"post-7", b'{"postid": 7, "video": "http://x/7.mp4"}\xff', (("trace", b"\x00\x01"),),
                        1_700_000_000_000, SourceRef("posts", 2, 77), "sidepath", "fetch", "FetchError",
                        "HTTP 404 for http://x/7.mp4", attempts=3, model="age")
    dlq.write_letters([letter])
    dlq.close()
    [doc] = read_letters(tmp_path / "dlq.jsonl")
    assert base64.b64decode(doc["key_b64"]) == b"post-7"
    assert base64.b64decode(doc["value_b64"]) == letter.value
    assert [[k, base64.b64decode(v)] for k, v in doc["headers"]] == [["trace", b"\x00\x01"]]
    assert (doc["stage"], doc["error_class"], doc["attempts"]) == ("fetch", "FetchError", 3)
    assert doc["source"] == {"topic": "posts", "partition": 2, "offset": 77}


def test_closed_sink_refuses_to_write(tmp_path):
    sink = open_sink(f"file://{tmp_path}/r.jsonl")
    sink.close()
    with pytest.raises(Exception, match="closed"):
        sink.write([result(1)])


@pytest.mark.parametrize(("url", "expected"), [
    ("file:///var/x/results.jsonl", "/var/x/results.jsonl"),
    ("file://localhost/var/results.jsonl", "/var/results.jsonl"),
    ("file://./var/results.jsonl", "var/results.jsonl"),
    ("file://./var/my%20results.jsonl?rotate_bytes=10MB", "var/my results.jsonl"),
])
def test_file_url_forms(url, expected):
    assert path_of_file_url(url) == Path(expected)


@pytest.mark.parametrize(("url", "message"), [
    ("file://var/results.jsonl", "host 'var' in a file URL; use file:///absolute/path.jsonl"),
    ("file:///tmp/", "no file name"),
    ("file:///tmp/r.jsonl?rotate_byte=10", "unknown option 'rotate_byte'; options of this sink: fsync, rotate_bytes"),
    ("file:///tmp/r.jsonl?rotate_bytes=lots", "option rotate_bytes='lots' is not a size"),
    ("file:///tmp/r.jsonl?fsync=maybe", "option fsync='maybe' must be true or false"),
])
def test_bad_file_urls_say_what_to_fix(url, message):
    with pytest.raises(ConfigError) as info:
        open_sink(url)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_write_error_is_transient_and_the_file_stays_whole(tmp_path):
    f = AppendOnlyFile(tmp_path / "r.jsonl")
    f.append([b'{"n":1}\n'])
    os.close(f._fd)                              # the descriptor goes bad under the writer (EBADF)
    with pytest.raises(TransientSinkError, match="cannot append"):
        f.append([b'{"n":2}\n'])
    f.append([b'{"n":3}\n'])                     # reopened and repaired, then written
    f.close()
    assert (tmp_path / "r.jsonl").read_bytes() == b'{"n":1}\n{"n":3}\n'
