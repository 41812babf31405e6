#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under target/criterion as a
Markdown table, with each figure's ratio to its group's reference benchmark.

Usage: python3 scripts/bench-medians.py [GROUP ...]   (default: every group)
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
# The figure each group's ratios are taken against.
REFERENCE = {
    "record": "atomic_floor",
    "contended2": "atomic_floor",
    "scrape": "outcometer_catalog",
    "gateway": "atomic_floor",
}


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.1f} ns"


def medians(group_dir):
    out = {}
    for estimates in sorted(group_dir.glob("**/new/estimates.json")):
        bench = json.loads((estimates.parent / "benchmark.json").read_text())
        out[bench["title"].split("/", 1)[1]] = json.loads(estimates.read_text())["median"]["point_estimate"]
    return out


def main(groups):
    if not ROOT.is_dir():
        sys.exit(f"no {ROOT}: run `cargo bench` first")
    for group_dir in sorted(p for p in ROOT.iterdir() if p.is_dir() and p.name != "report"):
        group = group_dir.name
        if groups and group not in groups:
            continue
        rows = medians(group_dir)
        ref = rows.get(REFERENCE.get(group, ""))
        print(f"\n### `{group}`\n")
        print("| Benchmark | Median | × " + (REFERENCE.get(group) or "—") + " |")
        print("|---|---:|---:|")
        for name, ns in rows.items():
            ratio = f"{ns / ref:.2f}" if ref else "—"
            print(f"| `{name}` | {fmt(ns)} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1:])
