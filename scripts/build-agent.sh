#!/usr/bin/env bash
# Builds bootproof-agent, the static in-guest agent, for every guest
# architecture (aarch64 and x86_64: musl; riscv64: glibc linked statically
# with Debian's cross gcc, installed here when missing). `bootproof verify`
# finds the results in target/<triple>/agent/ (or in
# $BOOTPROOF_AGENT_DIR/<arch>/). Idempotent: cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v riscv64-linux-gnu-gcc >/dev/null || [ ! -e /usr/riscv64-linux-gnu/lib/libc.a ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "build-agent: installing gcc-riscv64-linux-gnu and libc6-dev-riscv64-cross (the riscv64 agent's linker and static libc)" >&2
  inst() { $SUDO apt-get install -y -qq --no-install-recommends gcc-riscv64-linux-gnu libc6-dev-riscv64-cross >/dev/null; }
  inst || { $SUDO apt-get update -qq && inst; }
fi
for t in aarch64-unknown-linux-musl x86_64-unknown-linux-musl riscv64gc-unknown-linux-gnu; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  cargo build --locked -q --profile agent -p bootproof-agent --bin bootproof-agent --target "$t"
done
ls -l target/*-unknown-linux-*/agent/bootproof-agent >&2
