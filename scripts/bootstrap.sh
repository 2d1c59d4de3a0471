#!/usr/bin/env bash
# Sets up everything sidepath needs on a fresh machine, idempotently:
#   - a Python virtualenv with sidepath and its dependencies, cached outside the
#     clone and rebuilt only when setup.cfg / pyproject.toml change;
#   - the Apache Kafka jars (Maven Central, cached outside the clone);
#   - with --test: PostgreSQL and promtool from Debian's packages when absent.
# Prints the venv's path on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${SIDEPATH_CACHE:-$HOME/.cache/sidepath}
mkdir -p "$CACHE"

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is not installed; $2" >&2; exit 1; }; }
need python3 "install Python 3.11+"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11+ is required" >&2; exit 1; }
need java "install a Java 17 JDK (Debian: apt-get install openjdk-17-jre-headless)"
need mvn "install Maven (Debian: apt-get install maven)"

# run a command quietly; show its output only when it fails
quiet() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; echo "error: failed: $*" >&2; exit 1; fi
  rm -f "$log"
}

EXTRAS=postgres
MODE=${1:-}
if [ "$MODE" = "--test" ] || [ "$MODE" = "--bench" ]; then EXTRAS=test,postgres,mysql; fi
HASH=$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-12)
VENV=${SIDEPATH_VENV:-$CACHE/venv-$HASH}
STAMP="$VENV/.sidepath-$EXTRAS"
if [ ! -f "$STAMP" ]; then
  echo ">> creating $VENV (dependencies changed or first run; torch is large, pip's cache makes repeats cheap)" >&2
  python3 -m venv "$VENV"
  quiet "$VENV/bin/pip" install --upgrade "pip>=24" setuptools wheel
  quiet "$VENV/bin/pip" install -e ".[$EXTRAS]"
  touch "$STAMP"
else
  # always re-point the editable install at this clone (cheap, no deps)
  quiet "$VENV/bin/pip" install --no-deps -e .
fi

"$VENV/bin/sidepath" dev kafka fetch >&2

if [ "$MODE" = "--test" ] || [ "$MODE" = "--bench" ]; then
  missing=()
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
  if [ "$MODE" = "--bench" ]; then   # the tempo benchmark renders MIDI with a GM soundfont, speech with espeak
    command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth fluid-soundfont-gm)
    command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
    # the learned tempo model's corpus (python -m bench.tempo.train / .evaluate): more soundfonts,
    # Hydrogen's kits and demo songs, and the MIDI songs reserved for its test split
    [ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || missing+=(timgm6mb-soundfont)
    [ -f /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 ] || missing+=(musescore-general-soundfont-small)
    [ -d /usr/share/hydrogen/data/drumkits/Audiophob ] || missing+=(hydrogen-drumkits)
    [ -d /usr/share/hydrogen/data/demo_songs ] || missing+=(hydrogen-data)
    [ -d /usr/share/planetblupi/music ] || missing+=(planetblupi-music-midi)
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo ">> installing ${missing[*]} from Debian's packages" >&2
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    # The packages would start system services; the tests run their own servers. A policy-rc.d
    # answering 101 ("action forbidden") keeps them from starting during this install. An existing
    # policy-rc.d is left as it is, ours is removed afterwards; nothing that runs is ever stopped.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\n# sidepath scripts/bootstrap.sh: no service starts during its apt-get install\nexit 101\n' \
        | $SUDO tee "$policy" >/dev/null
      $SUDO chmod 755 "$policy"
      trap '$SUDO rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
fi
echo "$VENV"
