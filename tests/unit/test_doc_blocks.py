"""The docs-as-tests parser: which blocks run, what markers mean, how shown output is matched."""
from __future__ import annotations

import pytest

from tests.doc_blocks import DocMarkerError, blocks_of, console_commands, output_matches


def _doc(tmp_path, text):
    p = tmp_path / "doc.md"
    p.write_text(text)
    return p


def test_runnable_blocks_in_order_with_their_markers(tmp_path):
    doc = _doc(tmp_path, """# t
```bash
sidepath --help
```
```python
print("not run")
```
<!-- doc-test: skip (needs a cluster) -->

```sh
helm upgrade x
```
<!-- doc-test: setup: touch a
     touch b -->
  ```console
  $ ls
  a
  ```
Text mentioning `<!-- doc-test: skip (x) -->` inline is not a marker.
""")
    blocks = blocks_of(doc)
    assert [(b.lang, b.line, b.skip) for b in blocks] == [("bash", 2, None), ("sh", 10, "needs a cluster"),
                                                          ("console", 15, None)]
    assert blocks[2].setup == "touch a\n     touch b" and blocks[2].text == "$ ls\na"


@pytest.mark.parametrize("text, error", [
    ("<!-- doc-test: skip -->\n```bash\nx\n```\n", "unknown doc-test marker"),
    ("<!-- doc-test: skip (why) -->\nsome text\n```bash\nx\n```\n", "right before a fenced block"),
    ("<!-- doc-test: skip (why) -->\n```python\nx\n```\n", "before a python block"),
    ("```bash\nx\n```\n<!-- doc-test: skip (why) -->\n", "no block after it"),
    ("<!-- doc-test: skip (why)\n```bash\nx\n```\n", "unterminated"),
])
def test_a_marker_that_cannot_apply_is_an_error(tmp_path, text, error):
    with pytest.raises(DocMarkerError, match=error):
        blocks_of(_doc(tmp_path, text))


def test_console_commands_with_continuations_and_output():
    cmds = console_commands("$ a \\\n  --x\nout 1\n\nout 2\n$ b\n")
    assert [(c.text, c.expected) for c in cmds] == [("a \\\n  --x", ("out 1", "out 2")), ("b", ())]


def test_shown_output_matches_in_order_with_ellipsis_wildcards():
    actual = "log\nproduced 3 requests to posts at 127.0.0.1:40001, inline\nlag   0\n"
    assert output_matches(("produced 3 requests to posts at ..., inline", "lag 0"), actual) is None
    assert output_matches(("lag 0", "produced ..."), actual) == "produced ..."     # order matters
    assert output_matches(("produced 4 requests ...",), actual) == "produced 4 requests ..."


def test_the_real_docs_parse_and_every_skip_says_why():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    blocks = [b for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))] for b in blocks_of(doc)]
    assert any(b.path.name == "README.md" and not b.skip for b in blocks)
    assert all(len(b.skip) > 10 for b in blocks if b.skip is not None)
