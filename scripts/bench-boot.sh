#!/usr/bin/env bash
# Benchmark: real boots under QEMU with `bootproof boot`, per arch and mode.
#
#   scripts/bench-boot.sh [RUNS]      (default 3)
#   BENCH_ONLY=riscv64 scripts/bench-boot.sh   (only the rows whose guest names it)
#
# Inputs are fixed: the test suite's boot images, built from Debian's real
# kernels, shim, GRUB and systemd-boot (tests/images/make-boot-images.py),
# each with a busybox initramfs whose /init prints and powers off.
# Prints a Markdown table: median over RUNS of the time from QEMU's start to
# each stage (host clock), and of the whole command (bootproof's own work,
# QEMU and the guest). Then the host-side preparation (cargo bench).
# Also measures what EDK2's default boot-manager wait costs a hand-written
# QEMU command line that lacks `-boot menu=on,splash-time=0`.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/install-qemu.sh
tests/artifacts/fetch-debian-artifacts.sh target/debian-artifacts
python3 tests/images/make-boot-images.py target/boot-images target/debian-artifacts
tests/artifacts/fetch-riscv64-artifacts.sh target/riscv64-artifacts
python3 tests/images/make-riscv64-images.py target/riscv64-images target/riscv64-artifacts
cargo build --release --locked -q
bp=$PWD/target/release/bootproof
imgs=target/boot-images
rv=target/riscv64-images
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

echo "| guest | mode | firmware | boot loader | kernel | userspace | powered off | whole command |"
echo "|---|---|---|---|---|---|---|---|"
row() { # label mode-label args...
  local label=$1 mode=$2; shift 2
  [[ "$label" == *"${BENCH_ONLY:-}"* ]] || return 0
  for i in $(seq "$runs"); do
    s=$(date +%s%N)
    "$bp" boot --json --console-log "$tmp/console.log" "$@" > "$tmp/r$i.json" || true
    e=$(date +%s%N)
    echo $(( (e - s) / 1000000 )) > "$tmp/w$i"
  done
  python3 - "$tmp" "$runs" "$label" "$mode" <<'PY'
import json, sys, statistics
tmp, runs, label, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def med(xs): return statistics.median(xs) if xs else None
def fmt(x): return "–" if x is None else f"{x:.1f} s"
at = {k: [] for k in ["firmware-started", "boot", "kernel-started", "init-reached", "powered-off"]}
wall, outcomes = [], set()
for i in range(1, runs + 1):
    r = json.load(open(f"{tmp}/r{i}.json"))
    outcomes.add(r["result"]["outcome"])
    seen = set()
    for s in r["result"]["stages"]:
        k = "boot" if s["stage"] in ("boot-option-started", "grub-started") else s["stage"]
        if k in at and k not in seen and "host_time" in s:
            at[k].append(s["host_time"]); seen.add(k)
    wall.append(int(open(f"{tmp}/w{i}").read()) / 1000)
fw = r["firmware"]["description"].split(" (")[0]
cols = [fmt(med(at[k])) for k in ["firmware-started", "boot", "kernel-started", "init-reached", "powered-off"]]
note = "" if outcomes == {"booted"} else f" ({', '.join(sorted(outcomes))})"
print(f"| {label} | {mode} | {cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} | {cols[4]} | {fmt(med(wall))}{note} |")
PY
}
row "aarch64 (systemd-boot)" firmware "$imgs/systemd-boot-arm64.raw"
row "aarch64 (shim → GRUB, quiet)" firmware "$imgs/debian-grub-arm64.raw"
row "aarch64" "direct, AAVMF" --mode direct "$imgs/debian-grub-arm64.raw"
row "aarch64" "direct, no firmware" --mode direct --firmware none "$imgs/debian-grub-arm64.raw"
row "x86_64 (UKI)" firmware "$imgs/uki-amd64.raw"
row "x86_64 (shim → GRUB, quiet)" firmware "$imgs/debian-grub-amd64.raw"
row "x86_64" "direct, OVMF" --mode direct "$imgs/debian-grub-amd64.raw"
row "x86_64" "direct, SeaBIOS" --mode direct --firmware none "$imgs/debian-grub-amd64.raw"
row "riscv64 (GRUB)" firmware "$rv/debian-grub-riscv64.raw"
row "riscv64 (systemd-boot)" firmware "$rv/systemd-boot-riscv64.raw"
row "riscv64" "direct, EDK2" --mode direct "$rv/debian-grub-riscv64.raw"
row "riscv64" "direct, OpenSBI only" --mode direct --firmware none "$rv/debian-grub-riscv64.raw"
[ -z "${BENCH_ONLY:-}" ] || exit 0

# EDK2's boot-manager wait: time from QEMU's start to the first boot option,
# with bootproof's command line and with the same line minus `-boot`.
echo
echo "| aarch64 AAVMF command line | time to first boot option (median of $runs) |"
echo "|---|---|"
"$bp" boot --json --keep --until firmware "$imgs/systemd-boot-arm64.raw" > "$tmp/keep.json"
python3 - "$tmp" "$runs" <<'PY'
import json, os, subprocess, sys, time, statistics
tmp, runs = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{tmp}/keep.json"))
base = r["qemu"]["args"]
run_dir = r["run_dir"]
def strip_console(args):
    out, skip = [], False
    for i, a in enumerate(args):
        if skip: skip = False; continue
        if a in ("-chardev", "-serial", "-qmp"): skip = True; continue
        out.append(a)
    return out
def measure(args):
    times = []
    for _ in range(runs):
        log = f"{tmp}/fw.log"
        if os.path.exists(log): os.unlink(log)
        vars_copy = f"{tmp}/vars.fd"
        subprocess.run(["cp", "--sparse=always", f"{run_dir}/vars.raw", vars_copy], check=True)
        a = [x.replace(f"{run_dir}/vars.raw", vars_copy) for x in strip_console(args)]
        t = time.monotonic()
        p = subprocess.Popen([r["qemu"]["binary"], *a, "-serial", f"file:{log}"], stderr=subprocess.DEVNULL)
        while time.monotonic() - t < 60:
            time.sleep(0.05)
            if os.path.exists(log) and b"starting Boot" in open(log, "rb").read():
                break
        times.append(time.monotonic() - t)
        p.kill(); p.wait()
    return statistics.median(times)
with_boot = measure(base)
i = base.index("-boot")
without = measure(base[:i] + base[i + 2:])
print(f"| bootproof's (`-boot menu=on,splash-time=0`) | {with_boot:.1f} s |")
print(f"| the same without `-boot` (EDK2 default wait) | {without:.1f} s |")
import shutil; shutil.rmtree(run_dir, ignore_errors=True)
PY

# Agent mode (`bootproof verify`): per variant, time from QEMU's start to
# the agent's first record and to its last; and the whole command (all
# variants, 2 at a time, plus the hotplug and persistence boots).
scripts/build-agent.sh 2>/dev/null
echo
echo "| image | variant | first record | last record |"
echo "|---|---|---|---|"
for img in debian-grub-arm64.raw debian-grub-amd64.raw; do
  s=$(date +%s%N)
  "$bp" verify --json "$imgs/$img" > "$tmp/verify.json" || true
  e=$(date +%s%N)
  python3 - "$tmp/verify.json" "$img" $(( (e - s) / 1000000 )) <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); img = sys.argv[2]; wall = int(sys.argv[3]) / 1000
for v in d["variants"]:
    f = v.get("first_record_secs"); l = v.get("done_secs")
    fmt = lambda x: "–" if x is None else f"{x:.1f} s"
    print(f"| {img} | {v['name']} | {fmt(f)} | {fmt(l)} |")
print(f"| {img} | **whole `bootproof verify`** ({len(d['variants'])} boots, verdict {'pass' if d['passed'] else 'fail'}) | | {wall:.1f} s |")
PY
done

# Agent mode against full mode on the same real cloud image (Debian 12 with
# systemd and cloud-init, tests/images/make-cloud-image.sh): full mode is a
# whole cloud-init boot (firmware, GRUB, kernel, initramfs, systemd,
# cloud-init's four stages) with the agent run by its runcmd. One variant,
# no hotplug or persistence boots; the arm64 image is used when it was
# built (the opt-in test builds it).
echo
echo "| cloud image | mode | variant | first record | last record | whole command |"
echo "|---|---|---|---|---|---|"
tests/images/make-cloud-image.sh amd64 target/cloud-images/debian-amd64.raw
for arch in amd64 arm64; do
  img=target/cloud-images/debian-$arch.raw
  [ -f "$img.stamp" ] || continue
  var=(); [ "$arch" = arm64 ] && var=(--variants gic=3 acpi=on transport=pci)
  for mode in agent full; do
    for i in $(seq "$runs"); do
      s=$(date +%s%N)
      "$bp" verify --json --mode $mode --no-hotplug --persistence off "${var[@]}" "$img" > "$tmp/cv$i.json" || true
      e=$(date +%s%N)
      echo $(( (e - s) / 1000000 )) > "$tmp/cw$i"
    done
    python3 - "$tmp" "$runs" "$arch" "$mode" <<'PY'
import json, sys, statistics
tmp, runs, arch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
first, last, wall, ok = [], [], [], True
for i in range(1, runs + 1):
    d = json.load(open(f"{tmp}/cv{i}.json"))
    v = d["variants"][0]
    ok = ok and d["passed"]
    if v.get("first_record_secs") is not None: first.append(v["first_record_secs"])
    if v.get("done_secs") is not None: last.append(v["done_secs"])
    wall.append(int(open(f"{tmp}/cw{i}").read()) / 1000)
fmt = lambda xs: f"{statistics.median(xs):.1f} s" if xs else "–"
print(f"| debian-{arch} | {mode}{'' if ok else ' (failed)'} | {v['name']} | {fmt(first)} | {fmt(last)} | {fmt(wall)} |")
PY
  done
done

# `bootproof run`: the same 4-cell matrix (Debian's arm64 kernel, busybox
# root; gic 2,3 × acpi on,off) with one and with two cells at a time. The
# per-cell overhead is the cell's time beyond QEMU's own run (preparing the
# initramfs and overlay, the agent's setup, evidence), median over cells.
echo
echo "| bootproof run, 4 cells | whole run | speed-up | per cell (median) | of which QEMU ran | host-side overhead |"
echo "|---|---|---|---|---|---|"
for j in 1 2; do
  s=$(date +%s%N)
  "$bp" run --json --jobs $j --variants gic=2,3 acpi=on,off transport=pci "$imgs/debian-grub-arm64.raw" -- true > "$tmp/run$j.json" || true
  e=$(date +%s%N)
  echo $(( (e - s) / 1000000 )) > "$tmp/runw$j"
done
python3 - "$tmp" <<'PY'
import json, sys, statistics
tmp = sys.argv[1]
w1 = int(open(f"{tmp}/runw1").read()) / 1000
for j in (1, 2):
    d = json.load(open(f"{tmp}/run{j}.json"))
    wall = int(open(f"{tmp}/runw{j}").read()) / 1000
    cells = [c for c in d["cells"] if c.get("run")]
    secs = statistics.median(c["secs"] for c in cells)
    qemu = statistics.median(c["run"]["boot"]["elapsed"] for c in cells)
    over = statistics.median(c["secs"] - c["run"]["boot"]["elapsed"] for c in cells)
    ok = "" if d["passed"] else " (not all passed)"
    print(f"| --jobs {j}{ok} | {wall:.1f} s | {w1 / wall:.2f}× | {secs:.1f} s | {qemu:.1f} s | {over * 1000:.0f} ms |")
PY

echo
cargo bench -q -p bootproof-vm --bench prepare 2>/dev/null | grep '^|'
