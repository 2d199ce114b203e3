#!/usr/bin/env bash
# Builds bootproof's release artifacts into target/package/:
#   bootproof_<version>-1_<arch>.deb        the Debian package (cargo-deb): /usr/bin/bootproof,
#                                           the in-guest agents in /usr/lib/bootproof/agents/<arch>/,
#                                           man pages (man bootproof-check), bash/zsh/fish completions
#   bootproof-<version>-x86_64-linux-musl   a static binary for x86_64 hosts
#   bootproof-<version>-aarch64-linux-musl  a static binary for aarch64 hosts
# Installs what it needs when missing: cargo-deb (cargo install), musl-tools
# (x86_64's musl C compiler) and clang with musl-dev:arm64 (the C parts of
# zstd, bzip2, SQLite and ring for aarch64; rust-lld links).
# `cargo install --locked --path crates/cli` installs the binary alone.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_install() {
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
out=target/package
gen=$out/generated
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

scripts/build-agent.sh
cargo build --release --locked -p bootproof
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
target/release/bootproof manpages "$gen/man"
gzip -9n "$gen"/man/*.1
target/release/bootproof completions bash > "$gen/completions/bootproof.bash"
target/release/bootproof completions zsh > "$gen/completions/_bootproof"
target/release/bootproof completions fish > "$gen/completions/bootproof.fish"

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
cargo deb --locked --no-build --strip -p bootproof -o "$out/"

# Static binaries: Rust's musl targets bring their own C runtime; the C
# sources inside the dependencies need a compiler for the target.
command -v musl-gcc >/dev/null || apt_install musl-tools
dpkg --print-foreign-architectures | grep -qx arm64 || { $SUDO dpkg --add-architecture arm64; $SUDO apt-get update -qq; }
{ command -v clang >/dev/null && command -v llvm-ar >/dev/null && [ -e /usr/include/aarch64-linux-musl/stdio.h ]; } ||
  apt_install clang llvm musl-dev:arm64
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
CC_x86_64_unknown_linux_musl=musl-gcc \
  cargo build --release --locked -p bootproof --target x86_64-unknown-linux-musl
CC_aarch64_unknown_linux_musl="clang --target=aarch64-linux-musl -isystem /usr/include/aarch64-linux-musl" \
AR_aarch64_unknown_linux_musl=llvm-ar \
  cargo build --release --locked -p bootproof --target aarch64-unknown-linux-musl
for arch in x86_64 aarch64; do
  # (The release profile keeps line tables for backtraces: stripped here.)
  llvm-strip -o "$out/bootproof-$version-$arch-linux-musl" "target/$arch-unknown-linux-musl/release/bootproof"
done
ls -l "$out"/*.deb "$out"/bootproof-"$version"-* >&2
