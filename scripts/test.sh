#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first.
# Today the suite needs only the Rust toolchain; end-to-end tools (Prometheus,
# rotel) are added here as the tests that use them land.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-features --locked "$@"
