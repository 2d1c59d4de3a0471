"""The table of docs/reliability.md, written from the scenarios' own counts.

Every scenario that passes its checks adds a ``Row``; at the end of the pytest
session (``conftest.py``) the rows replace the matching lines of the table
between ``<!-- reliability:fast -->`` and ``<!-- /reliability:fast -->`` (or the
``soak`` block under ``SIDEPATH_SOAK=1``).  Rows of scenarios that did not run
in this session are kept, so ``pytest -k`` updates only what it ran.

    python -m tests.reliability.report      # print the tables as they stand
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import WRITE_DOCS_ENV, check_docs_write, machine

__all__ = ["Row", "HEADER", "DOC", "write_rows", "read_rows", "report_path"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
#: where a test run's table goes unless SIDEPATH_WRITE_DOCS=1 asks for the doc itself (ignored by git)
SCRATCH = Path(__file__).resolve().parents[2] / "var" / "reliability.md"


def report_path(environ: Mapping[str, str] | None = None) -> Path:
    """docs/reliability.md with SIDEPATH_WRITE_DOCS=1 (make soak), else var/reliability.md."""
    env = os.environ if environ is None else environ
    return DOC if env.get(WRITE_DOCS_ENV) == "1" else SCRATCH
HEADER = ["scenario", "sent", "models", "result rows", "JSONL lines", "duplicates collapsed",
          "dead letters", "restarts", "time to recover", "notes"]
#: the order of the table (scenarios not listed go last, alphabetically)
ORDER = ["kill -9", "broker restart", "database outage", "media server faults", "scale 1-3-1",
         "SIGTERM, full pipeline", "hostile input", "memory under a backlog"]


@dataclass(frozen=True)
class Row:
    scenario: str
    sent: int
    models: int
    result_rows: int
    jsonl_lines: int
    duplicates: int           # JSONL lines minus unique keys: redelivered results the upsert collapsed
    dead_letters: int
    restarts: int
    recover: str
    notes: str

    def cells(self) -> list[str]:
        return [self.scenario, f"{self.sent:,}", str(self.models), f"{self.result_rows:,}",
                f"{self.jsonl_lines:,}", f"{self.duplicates:,}", f"{self.dead_letters:,}", str(self.restarts),
                self.recover, self.notes.replace("|", "/")]


def _markers(block: str) -> tuple[str, str]:
    return f"<!-- reliability:{block} -->", f"<!-- /reliability:{block} -->"


def read_rows(text: str, block: str) -> dict[str, list[str]]:
    """The table rows (as cells) in ``block`` of the doc text, by scenario name."""
    start, end = _markers(block)
    m = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, flags=re.S)
    rows: dict[str, list[str]] = {}
    if not m:
        return rows
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == len(HEADER) and cells[0] != HEADER[0] \
                and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells
    return rows


def _order(name: str) -> tuple[int, str]:
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def write_rows(rows: list[Row], block: str, *, command: str, doc: Path = DOC) -> Path:
    """Merge ``rows`` into the ``block`` table of ``doc`` (the rest of the file is left alone)."""
    check_docs_write(doc)
    text = doc.read_text() if doc.exists() else "# Reliability\n"
    merged = read_rows(text, block)
    for r in rows:
        merged[r.scenario] = r.cells()
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(merged[k]) + " |" for k in sorted(merged, key=_order)]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"Written by `{command}` on {machine()}; last update {when}.\n\n" + "\n".join(lines))
    start, end = _markers(block)
    new = f"{start}\n{body}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: new, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return doc


def main() -> None:
    text = DOC.read_text() if DOC.exists() else ""
    for block in ("fast", "soak"):
        rows = read_rows(text, block)
        print(f"## {block}\n")
        print("| " + " | ".join(HEADER) + " |")
        print("|" + "---|" * len(HEADER))
        for k in sorted(rows, key=_order):
            print("| " + " | ".join(rows[k]) + " |")
        print()


if __name__ == "__main__":
    main()
