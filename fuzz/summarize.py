#!/usr/bin/env python3
"""Totals per target over every campaign in fuzz/campaigns.tsv, as the
Markdown table fuzz/README.md quotes. Usage: fuzz/summarize.py"""
import collections, os

HERE = os.path.dirname(os.path.abspath(__file__))
rows = collections.OrderedDict()
with open(os.path.join(HERE, "campaigns.tsv")) as f:
    for line in f:
        if not line.strip() or line.startswith("#"):
            continue
        date, target, secs, execs, edges, feats, files, findings = line.rstrip("\n").split("\t")
        r = rows.setdefault(target, dict(secs=0, execs=0, edges=0, feats=0, files=0, findings=0, campaigns=0))
        r["secs"] += int(secs)
        r["execs"] += int(execs)
        r["edges"] = max(r["edges"], int(edges))
        r["feats"] = max(r["feats"], int(feats))
        r["files"] = max(r["files"], int(files))
        r["findings"] += int(findings)
        r["campaigns"] += 1
committed = lambda t: len(os.listdir(os.path.join(HERE, "corpus", t))) if os.path.isdir(os.path.join(HERE, "corpus", t)) else 0
print("| target | CPU time | executions | campaigns | edges | features | corpus (scratch / committed) | findings |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for t, r in sorted(rows.items()):
    print(f"| `{t}` | {r['secs'] // 60} min | {r['execs']:,} | {r['campaigns']} | {r['edges']:,} | {r['feats']:,} | {r['files']:,} / {committed(t)} | {r['findings']} |")
total = sum(r["secs"] for r in rows.values())
print(f"\nTotal: {total // 60} CPU minutes over {len(rows)} targets.")
