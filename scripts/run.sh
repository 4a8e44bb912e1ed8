#!/usr/bin/env bash
# Builds and opens C2S Studio (with the built-in demo dataset when no file is given).
# Usage: scripts/run.sh [FILE.h5ad ...]   (extra arguments go to c2s-studio)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
exec cargo run --quiet -p c2s-studio -- "$@"
