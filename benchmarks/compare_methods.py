"""MODNAS from one `modnas benchmark` against a baseline from another, per device (e.g. NSGA-II with 1,000
evaluations per device, run by its own protocol).

Reads both ``results.csv`` files; MODNAS's rows and the baseline's rows at the largest budget it ran
("per device" scope), averaged over seeds. Prints the per-device means, the difference and on how many devices
MODNAS is ahead.

    python benchmarks/compare_methods.py runs/benchmark-gpt-s/results.csv \\
        runs/benchmark-gpt-s-nsga2-1000/results.csv nsga2
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modnas_results", help="results.csv of a benchmark that ran modnas")
    parser.add_argument("baseline_results", help="results.csv of a benchmark that ran the baseline")
    parser.add_argument("method", help="the baseline's method name, e.g. nsga2")
    args = parser.parse_args()

    ours = pd.read_csv(args.modnas_results)
    theirs = pd.read_csv(args.baseline_results)
    ours = ours[ours["method"] == "modnas"]
    theirs = theirs[(theirs["method"] == args.method) & (theirs["scope"] == "per device")]
    if ours.empty or theirs.empty:
        raise SystemExit(f"no modnas rows in {args.modnas_results} or no {args.method} rows in {args.baseline_results}")
    budget = int(theirs["budget"].max())
    theirs = theirs[theirs["budget"] == budget]
    table = pd.DataFrame({
        "modnas": ours.groupby("device")["hv"].mean(),
        f"{args.method}@{budget}": theirs.groupby("device")["hv"].mean(),
    }).dropna()
    table["difference"] = table.iloc[:, 0] - table.iloc[:, 1]
    print(table.round(4).to_string())
    ahead = int((table["difference"] > 0).sum())
    print(f"mean: modnas {table.iloc[:, 0].mean():.4f}, {args.method}@{budget} {table.iloc[:, 1].mean():.4f}; "
          f"modnas ahead on {ahead} of {len(table)} devices")


if __name__ == "__main__":
    main()
