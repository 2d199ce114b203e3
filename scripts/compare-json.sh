#!/usr/bin/env bash
# Compares the JSON every command prints, built from two revisions, on the
# test images: proof that a refactoring left the outputs alone.
#
#   scripts/compare-json.sh BASE_REV [NEW_REV]     (NEW_REV: the work tree)
#
# Static commands (inspect, check, extract, ls, cat) must be byte-identical.
# Boots (boot, verify, run; arm64 images, so TCG on either host) differ in
# timings, nonces, temporary paths and console-log names: those values are
# masked, everything else (every key, every verdict, every record) must be
# equal. Needs the test images (`cargo test` builds them) and the agent
# (scripts/build-agent.sh). Builds each revision into target/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/compare-json.sh BASE_REV [NEW_REV]}
new=${2:-}
root=$PWD
out=$root/target/compare
mkdir -p "$out"

build() { # REV NAME -> path of the built binary
  local rev=$1 name=$2 tree
  if [ -z "$rev" ]; then
    cargo build -q --locked -p bootproof >&2
    echo "$root/target/debug/bootproof"
    return
  fi
  tree=$out/src-$name
  rm -rf "$tree"
  git worktree prune
  git worktree add -q --detach "$tree" "$rev"
  CARGO_TARGET_DIR=$out/target-$name cargo build -q --locked -p bootproof --manifest-path "$tree/Cargo.toml" >&2
  git worktree remove --force "$tree"
  echo "$out/target-$name/debug/bootproof"
}

echo "building $base and ${new:-the work tree}…" >&2
old_bin=$(build "$base" base)
new_bin=$(build "$new" new)
export BOOTPROOF_AGENT_DIR=$out/agent
mkdir -p "$BOOTPROOF_AGENT_DIR"/{aarch64,x86_64}
for a in aarch64 x86_64; do
  cp "$root/target/$a-unknown-linux-musl/agent/bootproof-agent" "$BOOTPROOF_AGENT_DIR/$a/"
done

images=()
for f in target/test-images/* target/boot-images/*.raw; do
  case "$f" in *.json|*.txt|*.img|*.cfg|*/fat-tree|*.lock) continue ;; esac
  [ -f "$f" ] && images+=("$f")
done
[ ${#images[@]} -gt 0 ] || { echo "no test images: run cargo test first" >&2; exit 2; }

# run NAME ARGS...: the command under both binaries, stdout to files.
cases=0
run() {
  local name=$1; shift
  for side in old new; do
    local bin=$old_bin; [ $side = new ] && bin=$new_bin
    rm -rf "$out/extract"
    BOOTPROOF_STATE_DIR=$out/state BOOTPROOF_HISTORY=$out/history-$side.sqlite \
      "$bin" "$@" > "$out/$name.$side.json" 2>/dev/null || true
  done
  cases=$((cases + 1))
}

for img in "${images[@]}"; do
  n=$(basename "$img")
  run "inspect-$n" inspect --json "$img"
  run "check-$n" check --json "$img"
  run "ls-$n" ls --json "$img" /
  run "extract-$n" extract --json "$img" -o "$out/extract"
done
run "cat-boot" cat --json target/boot-images/debian-grub-arm64.raw 2:/etc/os-release
arm=target/boot-images/debian-grub-arm64.raw
run boot-firmware boot --json --until kernel --timeout 300 "$arm"
run boot-direct boot --json --mode direct "$arm"
run verify verify --json --variants gic=3 acpi=on transport=pci --no-hotplug --persistence off "$arm"
run run run --json --no-history --variants gic=2,3 acpi=on transport=pci "$arm" -- uname -r

python3 - "$out" <<'EOF'
import json, re, sys, pathlib
out = pathlib.Path(sys.argv[1])
# Values that differ from run to run, by key.
VOLATILE = {"elapsed", "host_time", "guest_time", "secs", "command_secs", "first_record_secs",
            "done_secs", "host_prepare_ms", "console_log", "console_bytes", "qemu_stderr",
            "evidence", "run_dir", "stale_cleanup", "agent", "nonce", "bytes_read",
            "history_run", "uptime", "boot_id", "stdout", "stderr"}
PATHS = re.compile(r"/(tmp|run|root|var)/[^\s\"',]*")
def norm(v, key=None):
    if key in VOLATILE:
        return "<volatile>"
    if isinstance(v, dict):
        return {k: norm(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [norm(x, key) for x in v]
    if isinstance(v, str):
        v = PATHS.sub("<path>", v)
        v = re.sub(r"/runs/[0-9a-f-]+", "/runs/<run>", v)          # per-boot run dirs
        v = re.sub(r"-\d{10}-\d+(-\d+)?\.log\b", "-<when>.log", v)  # console-log names
        v = re.sub(r"\[\s*\d+\.\d+\]", "[<uptime>]", v)            # kernel timestamps
        v = re.sub(r"\b\d{10}\b", "<epoch>", v)                     # clock readings
        v = re.sub(r"\b[0-9a-f]{24}\b", "<nonce>", v)
        v = re.sub(r"\d+\.\d+ ?s\b", "<secs>", v)
        return v
    if isinstance(v, float):
        return "<float>"
    return v
same = differ = 0
for old in sorted(out.glob("*.old.json")):
    name = old.name[: -len(".old.json")]
    new = out / f"{name}.new.json"
    a, b = old.read_bytes(), new.read_bytes()
    static = not name.startswith(("boot-", "verify", "run"))
    if static:
        ok = a == b
    else:
        try:
            ok = norm(json.loads(a)) == norm(json.loads(b))
        except ValueError:
            ok = a == b
    if ok:
        same += 1
    else:
        differ += 1
        print(f"DIFFERS {name} ({'bytes' if static else 'after masking timings and paths'}):"
              f" diff {old} {new}")
print(f"{same} identical, {differ} different (static commands byte for byte; boots after masking)")
sys.exit(1 if differ else 0)
EOF
