"""Compare the results of two run directories (or two benchmark directories) file by file.

Used to hold the line on NB201 while refactoring: freeze a run at one commit, repeat it at another, then

    python benchmarks/compare_runs.py OLD_RUN NEW_RUN

prints one line per result file: ``identical``, or the first differing row. Compared are metrics.csv, fronts.csv,
queries.csv, summary.json (without its wall-clock ``seconds``), and for benchmark directories results.csv and
curves.csv (without timing columns). Exit status 1 when anything differs.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

TIMING = {"seconds", "wall_seconds", "time", "elapsed"}
FILES = ("metrics.csv", "fronts.csv", "queries.csv", "summary.json", "results.csv", "curves.csv")


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        data.pop("seconds", None)
        data.pop("note", None)
        return [data]
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def compare(old: Path, new: Path) -> bool:
    same = True
    for name in FILES:
        a, b = old / name, new / name
        if not a.exists() and not b.exists():
            continue
        if not (a.exists() and b.exists()):
            print(f"{name}: only in {'old' if a.exists() else 'new'}")
            same = False
            continue
        ra, rb = _rows(a), _rows(b)
        diff = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), None)
        if diff is None and len(ra) == len(rb):
            print(f"{name}: identical ({len(ra)} rows)")
            continue
        same = False
        if diff is None:
            print(f"{name}: {len(ra)} vs {len(rb)} rows")
        else:
            print(f"{name}: row {diff} differs\n  old {ra[diff]}\n  new {rb[diff]}")
    return same


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python benchmarks/compare_runs.py OLD_DIR NEW_DIR")
    sys.exit(0 if compare(Path(sys.argv[1]), Path(sys.argv[2])) else 1)
