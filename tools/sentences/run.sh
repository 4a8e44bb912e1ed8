#!/usr/bin/env bash
# Build the reference venv (tools/sentences/.venv, gitignored) if needed and regenerate the fixtures in
# tests/fixtures/sentences/.
#
#   tools/sentences/run.sh                 # all fixtures except the anndata-0.7 one (kept as committed)
#   tools/sentences/run.sh --legacy        # also rebuild legacy_anndata07.h5ad in .venv/legacy07
#   tools/sentences/run.sh --pbmc PATH     # other arguments go to make_fixtures.py
#   tools/sentences/run.sh --prompts       # tests/fixtures/prompts/ (make_prompt_fixtures.py) only
#
# Needs Python 3.11 (set PYTHON=/path/to/python3.11 to choose) and PyPI. The PBMC fixtures are skipped
# when ../shared/data/expression/pbmc68k_reduced.h5ad (relative to the repo root) is absent.
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
    "$dir/bin/python" -m pip install --disable-pip-version-check -q --no-deps --only-binary=:all: -r "$req"
    echo "$want" >"$stamp"
  fi
}

make_venv .venv requirements.txt
if [ "${1:-}" = "--prompts" ]; then
  exec .venv/bin/python make_prompt_fixtures.py
fi

legacy=0
args=()
for a in "$@"; do
  if [ "$a" = "--legacy" ]; then legacy=1; else args+=("$a"); fi
done

if [ "$legacy" = 1 ]; then
  make_venv .venv/legacy07 requirements-legacy07.txt
  .venv/legacy07/bin/python make_legacy_h5ad.py
fi
exec .venv/bin/python make_fixtures.py "${args[@]+"${args[@]}"}"
