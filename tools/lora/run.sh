#!/usr/bin/env bash
# Creates the pinned venv (tools/lora/.venv) if needed and writes the LoRA training parity
# fixtures (peft + transformers runs on the tiny checkpoints) to tests/fixtures/lora/.
# Usage: tools/lora/run.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/tests/fixtures/lora}"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
  "$here/.venv/bin/pip" install -q -r "$here/requirements.txt"
fi
mkdir -p "$out"
"$here/.venv/bin/python" "$here/make_fixtures.py" --models "$root/tests/fixtures/models" --out "$out"
