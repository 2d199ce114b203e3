#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   installs the tools it needs, checks formatting and lints, then runs every
#   test (the first run builds the test images with real tools, ~30 s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
scripts/build-agent.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
