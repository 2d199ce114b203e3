#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine:
#   installs the tools it needs, checks formatting and lints, then runs every
#   test (the first run builds the test images with real tools, ~30 s).
# --long also runs the long real-image tests (marked #[ignore = "long: …"]):
#   full cloud-init boots and the arm64 cloud image, whose root is built
#   under emulation (30+ minutes more).
set -euo pipefail
cd "$(dirname "$0")/.."
ignored=()
case "${1:-}" in
  --long) ignored=(-- --include-ignored) ;;
  "") ;;
  *) echo "usage: $0 [--long]" >&2; exit 2 ;;
esac
scripts/setup-test-deps.sh
scripts/build-agent.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked "${ignored[@]}"
