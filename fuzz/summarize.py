#!/usr/bin/env python3
"""Totals per target over every campaign in fuzz/campaigns.tsv, as the
Markdown table fuzz/README.md quotes. Usage: fuzz/summarize.py

CPU minutes count only measured CPU time ("cpu" rows); early campaigns
recorded only their wall-clock budget ("wall" rows), shown apart."""
import collections, os

HERE = os.path.dirname(os.path.abspath(__file__))
rows = collections.defaultdict(lambda: dict(cpu=0, wall=0, execs=0, edges=0, feats=0, files=0, findings=0, campaigns=0))
with open(os.path.join(HERE, "campaigns.tsv")) as f:
    for line in f:
        if not line.strip() or line.startswith("#"):
            continue
        date, target, secs, kind, execs, edges, feats, files, findings = line.rstrip("\n").split("\t")
        r = rows[target]
        r[kind] += int(secs)
        r["execs"] += int(execs)
        r["edges"] = max(r["edges"], int(edges))
        r["feats"] = max(r["feats"], int(feats))
        r["files"] = max(r["files"], int(files))
        r["findings"] += int(findings)
        r["campaigns"] += 1


def committed(t):
    d = os.path.join(HERE, "corpus", t)
    return len(os.listdir(d)) if os.path.isdir(d) else 0


targets = sorted(set(rows) | {t for t in os.listdir(os.path.join(HERE, "corpus"))})
print("| target | CPU (measured) | wall budget (early) | executions | campaigns | edges | features | corpus: scratch / committed | findings |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for t in targets:
    r = rows[t]
    print(f"| `{t}` | {r['cpu'] / 60:.0f} min | {r['wall'] / 60:.0f} min | {r['execs']:,} | {r['campaigns']} | {r['edges']:,} | {r['feats']:,} | {r['files']:,} / {committed(t)} | {r['findings']} |")
cpu = sum(r["cpu"] for r in rows.values())
print(f"\nMeasured: {cpu / 60:.0f} CPU minutes over {sum(1 for r in rows.values() if r['cpu'])} targets; "
      f"targets with 30 CPU minutes or more: {sum(1 for r in rows.values() if r['cpu'] >= 1800)} of {len(targets)}.")
