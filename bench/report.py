"""Shared by the benchmarks: machine description and writing a table into a docs file.

A table lives between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` in
the target markdown file; re-running the benchmark replaces just that block.
"""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

__all__ = ["machine", "markdown_table", "write_block", "summary", "check_docs_write", "WRITE_DOCS_ENV"]

ROOT = Path(__file__).resolve().parent.parent
#: set to 1 to let a test run (make soak) rewrite the tables in docs/
WRITE_DOCS_ENV = "SIDEPATH_WRITE_DOCS"


def check_docs_write(path: Path) -> None:
    """A test run leaves the checkout clean: under pytest (``PYTEST_CURRENT_TEST``, which the
    scripts a test starts inherit) a tracked doc is rewritten only with SIDEPATH_WRITE_DOCS=1."""
    target = path.resolve()
    tracked = target.is_relative_to(ROOT / "docs") or target == ROOT / "README.md"
    if tracked and os.environ.get("PYTEST_CURRENT_TEST") and os.environ.get(WRITE_DOCS_ENV) != "1":
        raise RuntimeError(f"a test run may not rewrite {target.relative_to(ROOT)} (a tracked file); write the "
                           f"report under var/, or set {WRITE_DOCS_ENV}=1 to refresh the docs (make soak does)")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}{gpu}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_block(doc: str, name: str, text: str) -> Path:
    """Replace (or append) the named block in ``docs/<doc>``."""
    path = ROOT / "docs" / doc
    check_docs_write(path)
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{text.strip()}\n{end}"
    body = path.read_text() if path.exists() else ""
    if start in body:
        body = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _m: block, body, flags=re.S)
    else:
        body = body.rstrip() + ("\n\n" if body else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


SUMMARY_DIR = ROOT / "var" / "bench"


def summary(name: str, rows: list[tuple[str, str, str, str]]) -> None:
    """Headline rows (workload, baseline, sidepath, ratio) for the one table of `python -m bench`."""
    import json

    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    (SUMMARY_DIR / f"{name}.json").write_text(json.dumps({"rows": rows, "machine": machine()}))
