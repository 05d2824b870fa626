"""Measure GPT latency look-up tables for settings of this machine and validate each against whole-model timings.

    python benchmarks/gpt_latency_tables.py --space gpt-s --settings cpu-b1-s128-fp32-t1 cpu-b1-s128-fp32-t2 \\
        --out tables/ [--validate 30] [--energy]

For every setting: the table (:func:`modnas.spaces.gpt.latency.measure_table`), then the 10 reference and
``--validate`` random architectures timed whole (:func:`~modnas.spaces.gpt.latency.validate_table`); the table is
written as ``<space>_<setting>.json`` with the validation and this command in its ``meta``. A summary line per
setting is printed, and at the end the Spearman correlations between the settings' table sums over 1,000 random
architectures (how different the settings really are).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from scipy import stats

    from modnas.spaces.gpt.arch import VARIANTS
    from modnas.spaces.gpt.latency import LatencyTable, Setting, measure_table, validate_table
    from modnas.spaces.gpt.space import GPTSpace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="gpt-s", choices=sorted(VARIANTS))
    parser.add_argument("--settings", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--validate", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model-repeats", type=int, default=10)
    parser.add_argument("--energy", action="store_true")
    args = parser.parse_args(argv)
    settings = [Setting.parse(s) for s in args.settings]
    args.out.mkdir(parents=True, exist_ok=True)
    given = list(argv or sys.argv[1:])
    # the output folder is this machine's path: the command records it as OUT
    given = [("OUT" if i and given[i - 1] == "--out" else a) for i, a in enumerate(given)]
    command = "python benchmarks/gpt_latency_tables.py " + " ".join(shlex.quote(a) for a in given)
    tables: list[LatencyTable] = []
    for setting in settings:
        path = args.out / f"{args.space}_{setting.label}.json"
        if path.exists():  # resumable: a finished setting is kept
            tables.append(LatencyTable.load(path))
            print(f"{setting.label}: kept {path}", flush=True)
            continue
        start = time.perf_counter()
        table = measure_table(args.space, setting, repeats=args.repeats, energy=args.energy)
        lut_s = time.perf_counter() - start
        check = validate_table(table, count=args.validate, repeats=args.model_repeats, energy=args.energy)
        table.meta.update({"validation": check, "command": command,
                           "seconds": {"table": round(lut_s, 1), "total": round(time.perf_counter() - start, 1)}})
        table.save(path)
        tables.append(table)
        energy = f" energy spearman {check['energy_spearman']:.3f}" if "energy_spearman" in check else ""
        print(f"{setting.label}: spearman {check['spearman']:.3f} kendall {check['kendall']:.3f} "
              f"MAPE {check['mape_pct']:.1f}%{energy} ({table.meta['seconds']['total']:.0f} s; "
              f"{table.meta.get('energy', '')})", flush=True)
    space = GPTSpace(VARIANTS[args.space])
    archs = [space.arch(i) for i in space.sample(1000, np.random.default_rng(1))]
    sums = np.stack([t.predict(archs) for t in tables])
    print("Spearman between settings (table sums, 1000 random architectures):")
    for i, t in enumerate(tables):
        row = " ".join(f"{stats.spearmanr(sums[i], sums[j]).statistic:6.3f}" for j in range(len(tables)))
        print(f"  {t.setting.label:28s} {row}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
