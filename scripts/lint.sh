#!/usr/bin/env bash
# `make lint`: ruff (style, bugs, imports) and mypy (types) with pyproject.toml's configuration.
# Expects the venv of scripts/bootstrap.sh --test on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check .
# The packages live in worker/, sinks/, ... and are installed as sidepath.* through setup.cfg's
# package_dir, which mypy cannot follow: give it the same names through a tree of links.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir "$tree/sidepath"
for pkg in $(sed -n 's/^ *sidepath\.\([a-z_]*\) *= *\([a-z_]\+\) *$/\1:\2/p' setup.cfg); do
  ln -s "$PWD/${pkg#*:}" "$tree/sidepath/${pkg%%:*}"
done
(cd "$tree" && mypy --config-file "$OLDPWD/pyproject.toml" -p sidepath)
echo "lint: ruff and mypy clean"
