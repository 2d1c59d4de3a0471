#!/usr/bin/env bash
# Runs the whole suite (expects the venv of scripts/bootstrap.sh --test on PATH), then checks
# that it wrote nothing git tracks or would add (reports go under var/, see docs/reliability.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIDEPATH_REQUIRE_POSTGRES=1   # a missing PostgreSQL fails, never skips
in_git=0
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && in_git=1
[ "$in_git" = 1 ] && before=$(git status --porcelain)
rc=0
python -m pytest -q -ra -p no:cacheprovider "$@" || rc=$?
if [ "$in_git" = 1 ]; then
  after=$(git status --porcelain)
  if [ "$before" != "$after" ]; then
    echo "error: the test suite changed the checkout (git status --porcelain before vs after):" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
  fi
fi
exit "$rc"
