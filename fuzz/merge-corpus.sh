#!/usr/bin/env bash
# Folds the scratch corpus of each named target (default: all) into the
# committed one, minimized: libFuzzer's -merge=1 keeps the smallest set of
# inputs that covers every feature of both, then keeps those of at most
# 16 KiB, the 300 smallest; named inputs (seed-*, regress-*) always stay.
# Usage: fuzz/merge-corpus.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
scratch=${FUZZ_SCRATCH:-../target/fuzz-corpus}
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=32}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O >/dev/null 2>&1
for t in "${targets[@]}"; do
  [ -d "$scratch/$t" ] || continue
  out=$(mktemp -d)
  "target/x86_64-unknown-linux-gnu/release/$t" -merge=1 -rss_limit_mb=512 -timeout=10 \
    -max_len=1100000 "$out" "corpus/$t" "$scratch/$t" >/dev/null 2>&1 || true
  named=$(find "corpus/$t" -maxdepth 1 -type f \( -name 'seed-*' -o -name 'regress-*' \) -exec sha1sum {} + | cut -d' ' -f1)
  find "corpus/$t" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -delete
  kept=0
  for f in "$out"/*; do
    [ -e "$f" ] || continue
    h=$(basename "$f")
    grep -qx "$h" <<<"$named" && continue
    cp "$f" "corpus/$t/$h"
    kept=$((kept + 1))
  done
  rm -rf "$out"
  # Keep the repository small: of the merged inputs, those of at most
  # 16 KiB, the 300 smallest (named seeds and regressions always stay).
  find "corpus/$t" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -size +16k -delete
  find "corpus/$t" -maxdepth 1 -type f ! -name 'seed-*' ! -name 'regress-*' -printf '%s %p\n' |
    sort -n | tail -n +301 | cut -d' ' -f2- | xargs -r rm -f
  echo "$t: $(ls "corpus/$t" | wc -l) committed inputs ($kept from merging), $(du -sk "corpus/$t" | cut -f1) KiB"
done
