#!/usr/bin/env bash
# Runs the whole test suite (unit, end-to-end CLI, GUI flows, reference parity).
# Tests that need ../shared/data skip cleanly when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$HOME/.local/bin:$PATH"
cargo fmt --all -- --check
cargo test --workspace "$@"
