#!/usr/bin/env bash
# Builds bootproof-agent, the static in-guest agent, for every guest
# architecture (aarch64 and x86_64, musl). `bootproof verify` finds the
# results in target/<triple>/agent/ (or in $BOOTPROOF_AGENT_DIR/<arch>/).
# Idempotent: cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  cargo build --locked -q --profile agent -p bootproof-agent --bin bootproof-agent --target "$t"
done
ls -l target/*-unknown-linux-musl/agent/bootproof-agent >&2
