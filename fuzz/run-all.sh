#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) from the committed seeds.
# New inputs go to a scratch corpus, not into fuzz/corpus. Needs nightly
# and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
scratch=${FUZZ_SCRATCH:-target/fuzz-corpus}
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=32}  # see campaign.sh
for t in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$t"
  echo "== $t (${secs}s)"
  cargo +nightly fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=512 -malloc_limit_mb=512 -max_len=1100000 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|==[0-9]+==|SUMMARY|thread|panicked)" || true
done
