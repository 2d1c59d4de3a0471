"""The shell blocks of README.md and docs/*.md, as the docs-as-tests test runs them.

A fenced block whose language is ``bash``, ``sh``, ``shell`` or ``console`` is run.
An HTML comment right before it (blank lines between are fine) changes that:

    <!-- doc-test: skip (why it cannot run in a test: a cluster, a GPU, ...) -->
    <!-- doc-test: setup: shell commands run first, unseen by readers -->

A skip needs its reason in parentheses.  A ``console`` block holds ``$ command`` lines, each
followed by the output it shows; ``...`` in an output line stands for any text.  A marker
that is malformed or precedes no runnable block is an error, so a typo cannot silently
disable a check.  See README.md ("The docs are tested").
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Block", "Command", "DocMarkerError", "blocks_of", "console_commands", "output_matches", "RUNNABLE"]

RUNNABLE = ("bash", "sh", "shell", "console")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_MARKER = re.compile(r"<!--\s*doc-test:(?P<body>.*?)-->", re.S)
_SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^)]+)\)\s*$", re.S)
_SETUP = re.compile(r"^\s*setup:(?P<cmds>.+)$", re.S)


class DocMarkerError(ValueError):
    """A ``doc-test`` marker that cannot be honoured (its text says which and where)."""


@dataclass(frozen=True, slots=True)
class Block:
    path: Path
    line: int                 # 1-based line of the opening fence
    lang: str
    text: str
    skip: str | None = None   # the reason, when the block is not run
    setup: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass(frozen=True, slots=True)
class Command:
    text: str
    expected: tuple[str, ...]


def blocks_of(path: Path) -> list[Block]:
    """Every runnable block of ``path`` in order, with the marker that precedes it."""
    lines = path.read_text().splitlines()
    out: list[Block] = []
    pending: list[tuple[int, str]] = []       # (line, marker body) waiting for their block
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            text = lines[i]
            if text.lstrip().startswith("<!--") and "doc-test:" in text:
                start = i
                while "-->" not in text and i + 1 < len(lines):
                    i += 1
                    text += "\n" + lines[i]
                mm = _MARKER.search(text)
                if not mm:
                    raise DocMarkerError(f"{path.name}:{start + 1}: unterminated doc-test marker")
                pending.append((start + 1, mm.group("body")))
            elif text.strip() and pending:
                raise DocMarkerError(f"{path.name}:{pending[0][0]}: a doc-test marker must come right "
                                     f"before a fenced block, found text at line {i + 1}")
            i += 1
            continue
        fence, lang = m.group("fence"), m.group("lang").lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = textwrap.dedent("\n".join(lines[i + 1:j]))
        skip, setup = _markers(path, pending)
        if lang in RUNNABLE:
            out.append(Block(path, i + 1, lang, body, skip, setup))
        elif pending:
            raise DocMarkerError(f"{path.name}:{pending[0][0]}: doc-test marker before a {lang or 'plain'} block "
                                 f"(only {', '.join(RUNNABLE)} blocks are run)")
        pending = []
        i = j + 1
    if pending:
        raise DocMarkerError(f"{path.name}:{pending[0][0]}: doc-test marker with no block after it")
    return out


def _markers(path: Path, pending: list[tuple[int, str]]) -> tuple[str | None, str]:
    skip: str | None = None
    setup: list[str] = []
    for line, body in pending:
        if m := _SKIP.match(body):
            skip = " ".join(m.group("reason").split())
        elif m := _SETUP.match(body):
            setup.append(m.group("cmds").strip())
        else:
            raise DocMarkerError(f"{path.name}:{line}: unknown doc-test marker {body.strip()!r}; use "
                                 "'skip (reason)' or 'setup: commands'")
    return skip, "\n".join(setup)


def console_commands(text: str) -> list[Command]:
    """``$ cmd`` lines (continued by a trailing backslash) with the output lines after each."""
    out: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            if lines[i].strip():
                raise DocMarkerError(f"console block: output line {lines[i]!r} before any '$ ' command")
            i += 1
            continue
        cmd = [lines[i][2:]]
        while cmd[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd.append(lines[i])
        i += 1
        expected = []
        while i < len(lines) and not lines[i].startswith("$ "):
            if lines[i].strip():
                expected.append(lines[i])
            i += 1
        out.append(Command("\n".join(cmd), tuple(expected)))
    return out


def _pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(" ".join(p.split())) for p in expected.split("...")]
    return re.compile(".*".join(parts))


def output_matches(expected: tuple[str, ...], actual: str) -> str | None:
    """None when every expected line matches an actual line, in order; else the first that does not."""
    got = [" ".join(line.split()) for line in actual.splitlines()]
    k = 0
    for line in expected:
        pat = _pattern(line)
        while k < len(got) and not pat.fullmatch(got[k]):
            k += 1
        if k == len(got):
            return line
        k += 1
    return None
