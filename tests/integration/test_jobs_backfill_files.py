"""`sidepath backfill --input`: JSONL, CSV and directory inputs, checkpoints, progress lines.

Real encoded images on disk and inline, decoded for real (``noop`` with frames);
results in SQLite and JSONL sinks.  No Kafka is involved.
"""
from __future__ import annotations

import base64
import csv
import json
import re

import pytest

from tests.fixtures.media import make_image
from tests.worker_util import jsonl_results, sqlite_rows, worker_config, write_config_file

SUMMARY = re.compile(r"backfill: (\d+) items: (\d+) done, (\d+) skipped \(already in the destination\), "
                     r"(\d+) failed")


def _config(tmp_path, **overrides):
    cfg = worker_config(tmp_path, "127.0.0.1:9", "unused", **{
        "model.name": "noop", "model.options": {"frames": True}, "model.max_batch": 4, **overrides})
    return str(write_config_file(tmp_path / "sidepath.toml", cfg))


def _summary(text: str) -> tuple[int, int, int, int]:
    m = SUMMARY.search(text)
    assert m, text[-3000:]
    return tuple(int(g) for g in m.groups())  # type: ignore[return-value]


def test_jsonl_input_with_a_bad_line_keeps_one_error_row_across_runs(tmp_path, run_cli):
    media = tmp_path / "media"
    media.mkdir()
    lines = []
    for i in range(5):
        path = media / f"img{i}.jpg"
        make_image("jpeg", size=(40 + 8 * i, 30), path=path)
        lines.append(json.dumps({"postid": f"j{i}", "uid": "u", "seqid": i, "image": str(path), "lang": "en"}))
    lines.insert(2, "{this line is not json")
    lines.append(json.dumps({"postid": "inline", "uid": "u", "seqid": 9,
                             "image": base64.b64encode(make_image("png", size=(24, 16))).decode()}))
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(lines) + "\n\n")
    config = _config(tmp_path, **{"sinks.urls": [f"sqlite:///{tmp_path}/results.db"]})

    r = run_cli("--config", config, "backfill", "--input", str(src))
    assert r.exit_code == 1, r.output[-3000:]
    assert _summary(r.stdout) == (7, 6, 0, 1)
    rows = {(x["postid"], x["seqid"]): x for x in sqlite_rows(tmp_path / "results.db")}
    assert len(rows) == 7
    widths = {k[0]: json.loads(v["results"])["width"] for k, v in rows.items() if v["status"] == "ok"}
    assert widths == {**{f"j{i}": 40 + 8 * i for i in range(5)}, "inline": 24}
    (bad,) = [v for v in rows.values() if v["status"] == "error"]
    assert bad["stage"] == "parse" and "not JSON" in bad["msg"]
    assert json.loads(rows[("j0", "0")]["extra"]) == {"lang": "en"}       # extra fields carried through

    r = run_cli("--config", config, "backfill", "--input", str(src))
    assert r.exit_code == 1
    assert _summary(r.stdout) == (7, 0, 6, 1)
    assert len(sqlite_rows(tmp_path / "results.db")) == 7      # the bad line's row was rewritten, not added


def test_csv_input_with_where_and_a_checkpoint_for_a_jsonl_sink(tmp_path, run_cli):
    src = tmp_path / "items.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["postid", "uid", "seqid", "image", "video"])
        for i in range(8):
            w.writerow([f"c{i}", f"u{i % 2}", i, base64.b64encode(make_image("png", size=(16 + i, 16))).decode(), ""])
    out = tmp_path / "out.jsonl"
    ckpt = tmp_path / "done.ckpt"
    config = _config(tmp_path, **{"sinks.urls": [f"file://{out}"]})
    args = ["--config", config, "backfill", "--input", str(src), "--where", "uid=u1", "--checkpoint", str(ckpt)]

    r = run_cli(*args)
    assert r.exit_code == 0, r.output[-3000:]
    assert _summary(r.stdout) == (4, 4, 0, 0)
    got = {x["postid"]: x["results"]["width"] for x in jsonl_results(out)}
    assert got == {"c1": 17, "c3": 19, "c5": 21, "c7": 23}

    r = run_cli(*args)                                  # the JSONL sink cannot be asked: the checkpoint can
    assert _summary(r.stdout) == (4, 0, 4, 0)
    assert len(jsonl_results(out)) == 4

    r = run_cli("--config", config, "backfill", "--input", str(src), "--where", "uid")
    assert r.exit_code == 2 and "field=value" in r.stderr


def test_directory_input_every_media_file_once_named_by_its_path(tmp_path, run_cli):
    root = tmp_path / "photos"
    (root / "2024" / "may").mkdir(parents=True)
    (root / ".cache").mkdir()
    make_image("jpeg", size=(64, 48), path=root / "a.jpg")
    make_image("png", size=(50, 40), path=root / "2024" / "b.png")
    make_image("webp", size=(36, 20), path=root / "2024" / "may" / "c.webp")
    make_image("png", size=(10, 10), path=root / ".cache" / "thumb.png")      # hidden: not an item
    (root / "notes.txt").write_text("not media")
    out = tmp_path / "out.jsonl"
    # file_roots does not include the directory: the backfill allows the directory it was given
    config = _config(tmp_path, **{"sinks.urls": [f"file://{out}"], "decode.file_roots": []})

    r = run_cli("--config", config, "backfill", "--input", str(root))
    assert r.exit_code == 0, r.output[-3000:]
    assert _summary(r.stdout) == (3, 3, 0, 0)
    got = {x["postid"]: (x["uid"], x["results"]["width"], x["results"]["height"]) for x in jsonl_results(out)}
    assert got == {"a.jpg": ("photos", 64, 48), "2024/b.png": ("photos", 50, 40),
                   "2024/may/c.webp": ("photos", 36, 20)}


def test_progress_is_logged_periodically_when_not_on_a_terminal(tmp_path, run_cli):
    src = tmp_path / "items.jsonl"
    img = base64.b64encode(make_image("png", size=(16, 16))).decode()
    src.write_text("".join(json.dumps({"postid": f"p{i}", "uid": "u", "seqid": 1, "image": img}) + "\n"
                           for i in range(24)))
    config = _config(tmp_path, **{"model.options": {"frames": True, "batch_ms": 100}, "model.max_batch": 2,
                                  "sinks.urls": [f"sqlite:///{tmp_path}/results.db"]})

    r = run_cli("--config", config, "backfill", "--input", str(src), "--log-every", "0.3")
    assert r.exit_code == 0, r.output[-3000:]
    logs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    progress = [d["message"] for d in logs if d["message"].startswith("backfill progress")]
    assert len(progress) >= 2, progress
    done = [int(re.search(r"(\d+) done", m).group(1)) for m in progress]
    assert done == sorted(done) and done[0] < 24           # counts move forward while the job runs
    assert "\r" not in r.output                             # no progress bar redraws in a log

    r = run_cli("--config", config, "backfill", "--input", str(src), "--overwrite", "--progress")
    assert r.exit_code == 0
    assert "backfill: 24item" in r.stderr                   # tqdm's bar, forced on
    assert not any("backfill progress" in line for line in r.stdout.splitlines())


@pytest.mark.parametrize("args, says", [
    (["--input", "{src}", "--from-sql", "sqlite:///x.db", "--query", "SELECT 1"], "give exactly one of --input or"),
    ([], "give exactly one of --input or --from-sql"),
    (["--from-sql", "sqlite:///x.db"], "--from-sql needs --query"),
    (["--input", "{src}", "--query", "SELECT 1"], "--query needs --from-sql"),
])
def test_usage_errors_are_one_line_and_exit_2(tmp_path, run_cli, args, says):
    src = tmp_path / "items.jsonl"
    src.write_text("{}\n")
    r = run_cli("--config", _config(tmp_path), "backfill", *[a.format(src=src) for a in args])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr


def test_input_that_is_not_utf8_is_one_error_row_in_jsonl_and_one_line_for_csv(tmp_path, run_cli):
    """JSONL lines stand alone: a line that is not UTF-8 is a bad request like any other (its error row
    and dead letter), the rest go on.  A CSV record may span lines: the run stops with one line."""
    image = base64.b64encode(make_image("png", size=(24, 16))).decode()
    good = [json.dumps({"postid": f"u{i}", "uid": "u", "seqid": i, "image": image}).encode() for i in range(3)]
    src = tmp_path / "latin1.jsonl"
    src.write_bytes(b"\n".join([good[0], b'{"postid": "caf\xe9", "uid": "u", "seqid": 7}', *good[1:]]) + b"\n")
    config = _config(tmp_path, **{"sinks.urls": [f"sqlite:///{tmp_path}/results.db"]})
    r = run_cli("--config", config, "backfill", "--input", str(src))
    assert r.exit_code == 1, r.output[-3000:]
    assert _summary(r.stdout) == (4, 3, 0, 1)
    (bad,) = [v for v in sqlite_rows(tmp_path / "results.db") if v["status"] == "error"]
    assert bad["stage"] == "parse" and "utf-8" in bad["msg"], bad["msg"]

    csv_src = tmp_path / "latin1.csv"
    data = image.encode()
    csv_src.write_bytes(b"postid,uid,seqid,image\nc0,u,0," + data + b"\ncaf\xe9,u,1," + data + b"\n")
    r = run_cli("--config", config, "backfill", "--input", str(csv_src))
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 3 is not UTF-8 text (byte 3); save the file as UTF-8" in lines[0], r.stderr
