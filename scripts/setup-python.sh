#!/usr/bin/env bash
# Persistent Python venv for the aiortc/pymediasoup e2e participant.
# Idempotent; a fast no-op when tests/e2e/requirements.txt is already installed.
#
# Env: MAFALDA_CACHE (default /var/cache/mafalda): venv in $MAFALDA_CACHE/venv,
#      pip cache in $MAFALDA_CACHE/pip. PYTHON (default python3).
# Prints nothing but "setup-python: ok" when up to date; the venv's python is
# $MAFALDA_CACHE/venv/bin/python.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MAFALDA_CACHE:-/var/cache/mafalda}"
VENV="$CACHE/venv"
REQ="$ROOT/tests/e2e/requirements.txt"
PY="${PYTHON:-python3}"
export PIP_CACHE_DIR="$CACHE/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "setup-python: $*"; }

want="$(cat "$REQ" | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.mafalda-req.sha256"
if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]] \
   && "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "ok"
  exit 0
fi

mkdir -p "$CACHE" "$PIP_CACHE_DIR"
if ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "creating venv $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
log "installing $(grep -v '^#' "$REQ" | tr '\n' ' ')"
"$VENV/bin/python" -m pip install --quiet --only-binary=av,aiortc,numpy -r "$REQ"
"$VENV/bin/python" - <<'PY'
import aiortc, pymediasoup, aiohttp, av, numpy, aioice  # noqa: F401
print("setup-python: imports ok (aiortc %s, av %s)" % (aiortc.__version__, av.__version__))
PY
echo "$want" > "$stamp"
log "ok"
