"""Medians per (workload, system) over rounds from results.jsonl."""
import json
import statistics
import sys
from collections import defaultdict

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(list)
for r in rows:
    by[(r["workload"].replace("_4_clients", "_N_clients"), r["system"])].append(r)
keys = ["p50_us", "p99_us", "tasks_per_s", "mib_per_s", "us_per_task"]
print(f"{'workload':<26}{'metric':<14}{'ray':>12}{'gpunet':>12}{'gpunet/ray':>12}")
for w in sorted({k[0] for k in by}):
    for k in keys:
        vals = {}
        for s in ("ray", "gpunet"):
            xs = [r[k] for r in by.get((w, s), []) if k in r]
            if xs:
                vals[s] = statistics.median(xs)
        if len(vals) == 2:
            ratio = vals["gpunet"] / vals["ray"] if vals["ray"] else float("nan")
            print(f"{w:<26}{k:<14}{vals['ray']:>12.1f}{vals['gpunet']:>12.1f}{ratio:>12.2f}")
