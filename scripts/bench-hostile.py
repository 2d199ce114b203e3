#!/usr/bin/env python3
"""Time and peak memory of every static command on the hostile images.

Usage: scripts/bench-hostile.py [BOOTPROOF]   (default target/release/bootproof)

The images come from the hostile test suite (crates/cli/tests/hostile_images.rs
writes them to target/hostile/; run `cargo test -p bootproof --test
hostile_images` first). Each command runs once per image; its wall time and
peak RSS (from wait4) are printed as a table with the limits the project
promises: 512 MiB and 10 s on inputs up to 64 MiB. `verify` runs with no
QEMU on PATH, so it does all its work up to starting QEMU and stops there.
Exits 1 when any run is over a limit or ends in a signal (a crash).
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RSS_LIMIT_MIB = 512
TIME_LIMIT_S = 10.0


def commands(img, scratch):
    return [
        ("inspect", ["inspect", img]),
        ("ls", ["ls", img, "/"]),
        ("cat", ["cat", img, "/loader/loader.conf"]),
        ("check", ["check", "--json", img]),
        ("extract", ["extract", "-o", os.path.join(scratch, "out"), img]),
        ("verify", ["verify", "--json", img]),
    ]


def run(binary, args, env):
    start = time.monotonic()
    p = subprocess.Popen([binary] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        _, status, usage = os.wait4(p.pid, 0)
    except KeyboardInterrupt:
        p.kill()
        raise
    secs = time.monotonic() - start
    code = os.waitstatus_to_exitcode(status)
    return code, secs, usage.ru_maxrss / 1024.0


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/bootproof")
    images = sorted(glob.glob(os.path.join(ROOT, "target/hostile/*.img")))
    if not images:
        sys.exit("no images in target/hostile/: run `cargo test -p bootproof --test hostile_images` first")
    # No QEMU on PATH: verify stops where it would start it.
    env = dict(os.environ, PATH="/nonexistent", NO_COLOR="1")
    rows, over = [], False
    for img in images:
        size = os.path.getsize(img) / (1 << 20)
        with tempfile.TemporaryDirectory() as scratch:
            for name, args in commands(img, scratch):
                code, secs, rss = run(binary, args, env)
                bad = code < 0 or rss > RSS_LIMIT_MIB or secs > TIME_LIMIT_S
                over |= bad
                rows.append((os.path.basename(img), f"{size:.1f}", name, str(code), f"{secs:.2f}", f"{rss:.0f}", "OVER" if bad else "ok"))
    head = ("image", "MiB", "command", "exit", "seconds", "peak MiB", "within limits")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))
    print(line(head))
    for r in rows:
        print(line(r))
    worst_t = max(float(r[4]) for r in rows)
    worst_m = max(float(r[5]) for r in rows)
    print(f"\n{len(rows)} runs; slowest {worst_t:.2f} s (limit {TIME_LIMIT_S:.0f} s), largest {worst_m:.0f} MiB (limit {RSS_LIMIT_MIB} MiB)")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
