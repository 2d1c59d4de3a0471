#!/usr/bin/env bash
# Runs the whole suite (expects the venv of scripts/bootstrap.sh --test on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
export SIDEPATH_REQUIRE_POSTGRES=1   # a missing PostgreSQL fails, never skips
python -m pytest -q -ra -p no:cacheprovider "$@"
