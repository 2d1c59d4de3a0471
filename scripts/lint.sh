#!/usr/bin/env bash
# `make lint`: ruff (style, bugs, imports) with pyproject.toml's configuration.
# Expects the venv of scripts/bootstrap.sh --test on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
echo "lint: ruff clean"
