#!/usr/bin/env bash
# Creates the pinned venv (tools/models/.venv) if needed and writes the engine parity fixtures
# (tiny random HF checkpoints + transformers reference outputs) to tests/fixtures/models/, then the
# cell2sentence package's own pad-inclusive embeddings of them (compat_embeddings.json).
# Usage: tools/models/make_fixtures.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/tests/fixtures/models}"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
fi
"$here/.venv/bin/pip" install -q --no-deps -r "$here/requirements-package.txt"
mkdir -p "$out"
"$here/.venv/bin/python" "$here/make_fixtures.py" --out "$out" \
  --shared-tokenizer "$root/../shared/data/tokenizers/gpt-neox-20b/tokenizer.json"
"$here/.venv/bin/python" "$here/make_compat_fixture.py" --out "$out"
