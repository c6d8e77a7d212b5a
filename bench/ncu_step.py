#!/usr/bin/env python3
"""Summarises an Nsight Compute CSV (`ncu --csv --print-units base --metrics
gpu__time_duration.sum,dram__bytes_read.sum,...`) of decode steps: per kernel (name up to its template arguments'
first 60 characters) the launches, mean time, mean DRAM bytes read and written, the read rate; then the
totals per layer-kernel group. Kernels run one at a time under ncu, so the times are each
kernel alone (no PDL overlap, cold start included). usage: ncu_step.py FILE.csv"""
import csv
import re
import sys
from collections import OrderedDict

SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0,
         "byte": 1.0, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9, "KB": 1e3, "MB": 1e6, "GB": 1e9}


def num(v):
    return float(v.replace(",", "")) if v not in ("", "n/a") else 0.0


def main(path):
    lines = open(path, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        print("no ncu CSV header in", path)
        return 1
    kern = OrderedDict()  # ID -> (name, {metric: value})
    for row in csv.DictReader(lines[start:]):
        k = kern.setdefault(row["ID"], [row["Kernel Name"], {}])
        k[1][row["Metric Name"]] = num(row["Metric Value"]) * SCALE.get(row["Metric Unit"], 1.0)
    agg = OrderedDict()
    for name, m in kern.values():
        short = re.sub(r"\(.*", "", name)[:70]
        a = agg.setdefault(short, [0, 0.0, 0.0, 0.0, 0.0, 0.0])
        a[0] += 1
        a[1] += m.get("gpu__time_duration.sum", 0.0)
        a[2] += m.get("dram__bytes_read.sum", 0.0)
        a[3] += m.get("dram__bytes_write.sum", 0.0)
        a[4] += m.get("sm__inst_executed.avg.per_cycle_active", 0.0)
        a[5] += m.get("sm__warps_active.avg.pct_of_peak_sustained_active", 0.0)
    tt = sum(a[1] for a in agg.values())
    tb = sum(a[2] for a in agg.values())
    print(f"{len(kern)} kernels, {tt * 1e6:.1f} us, {tb / 1e6:.1f} MB read ({tb / tt / 1e9:.0f} GB/s over kernel time)")
    print(f"{'kernel':60s} {'n':>4s} {'us/launch':>9s} {'MB read':>8s} {'MB wr':>8s} {'GB/s':>6s} {'% time':>6s} {'IPC':>5s} "
          f"{'occ%':>5s}")
    for short, (n, t, r, w, ipc, occ) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"{short[:60]:60s} {n:4d} {t / n * 1e6:9.2f} {r / n / 1e6:8.2f} {w / n / 1e6:8.2f} {r / t / 1e9 if t else 0:6.0f} "
              f"{100 * t / tt:6.1f} {ipc / n:5.2f} {occ / n:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
