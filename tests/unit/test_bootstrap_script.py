"""scripts/bootstrap.sh never stops what it did not start (a developer's own database or Prometheus)."""
from __future__ import annotations

import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bootstrap.sh"


def _code() -> str:
    return "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("printf") else line
                     for line in SCRIPT.read_text().splitlines())


def test_bootstrap_kills_and_stops_nothing_by_name():
    code = _code()
    for forbidden in (r"\bpkill\b", r"\bkillall\b", r"systemctl\s+stop", r"service\s+\S+\s+stop", r"\bkill\b"):
        assert not re.search(forbidden, code), forbidden


def test_services_are_kept_from_starting_by_a_policy_rc_d_removed_only_when_ours():
    code = _code()
    install = code.index("$SUDO apt-get install")
    policy = code.index('policy=/usr/sbin/policy-rc.d')
    assert policy < install
    block = code[policy:install]
    assert 'if [ ! -e "$policy" ]' in block and "exit 101" in block
    assert "trap '$SUDO rm -f \"$policy\"' EXIT" in block    # removed on every exit, set only when created here
