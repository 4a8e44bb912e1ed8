#!/usr/bin/env bash
# Build the reference venvs (tools/genesets/.venv and .venv/scanpy198, gitignored) if needed and regenerate
# the fixtures in tests/fixtures/genesets/:
#
#   tools/genesets/run.sh                  # ssGSEA (gseapy 1.3.1), score_genes (scanpy 1.11.5 and 1.9.8),
#                                          # Welch / BH / z-score (scipy, statsmodels)
#   tools/genesets/run.sh --bench ARGS...  # gseapy side of `c2s-studio bench-ssgsea` (bench_ssgsea.py)
#
# Needs Python 3.11 (set PYTHON=/path/to/python3.11 to choose) and PyPI. The PBMC fixtures are skipped
# when ../shared/data (relative to the repo root) is absent; pass --shared DIR to point elsewhere.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
ver="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$ver" != "3.11" ]; then
  echo "run.sh: need Python 3.11 for the pinned wheels, $PY is $ver (set PYTHON=...)" >&2
  exit 2
fi

# make_venv DIR REQUIREMENTS: create DIR if missing; (re)install when the requirements file changed.
make_venv() {
  local dir="$1" req="$2" stamp want
  stamp="$dir/.requirements.sha256"
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -x "$dir/bin/python" ]; then
    "$PY" -m venv "$dir"
  fi
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    "$dir/bin/python" -m pip install --disable-pip-version-check -q --no-deps --only-binary=:all: -r "$req" >&2
    echo "$want" >"$stamp"
  fi
}

make_venv .venv requirements.txt
if [ "${1:-}" = "--bench" ]; then
  shift
  exec .venv/bin/python bench_ssgsea.py "$@"
fi
make_venv .venv/scanpy198 requirements-scanpy198.txt
.venv/bin/python make_fixtures.py "$@"
exec .venv/scanpy198/bin/python score_genes_198.py "$@"
