#!/usr/bin/env bash
# Build the umap-learn reference venv (tools/umap/.venv, gitignored) if needed, then run the Python side
# of the UMAP benchmark with the given arguments (`c2s-studio bench-umap` calls it; see bench_umap.py).
#
#   tools/umap/run.sh --setup-only          # just create / update the venv
#   tools/umap/run.sh INPUT.f32 ROWS DIMS OUT_DIR [--k 15]
#
# Needs Python 3.11 (set PYTHON=/path/to/python3.11 to choose) and PyPI.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  echo "run.sh: need Python 3.11 for the pinned wheels, $PY is $ver (set PYTHON=...)" >&2
  exit 2
fi

venv="$HERE/.venv"
req="$HERE/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  "$PY" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps --only-binary=:all: -r "$req" >&2
  echo "$want" >"$stamp"
fi
if [ "${1:-}" = "--setup-only" ]; then
  exit 0
fi
exec "$venv/bin/python" "$HERE/bench_umap.py" "$@"
