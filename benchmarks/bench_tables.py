"""Time the first query of each bundled table in a fresh process (the lazy-loading target: well under 1 s).

Usage: python benchmarks/bench_tables.py [--repeats 5]
Prints one line per figure: the median over fresh interpreter processes.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

SNIPPET = """
import time
t0 = time.perf_counter()
from modnas.tables import nb201_tables as T
t1 = time.perf_counter()
{query}
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""

QUERIES = {
    "accuracy (cifar10, 200 ep)": "T.accuracy(6111)",
    "latency (fpga)": "T.latency('fpga', 6111)",
    "hw-nas-bench energy (eyeriss)": "T.energy('eyeriss', 6111)",
    "params": "T.params(6111)",
    "arch string -> index": "from modnas.spaces.nb201 import to_index; "
    "to_index('|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|')",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, query in QUERIES.items():
        imports, firsts = [], []
        for _ in range(args.repeats):
            out = subprocess.run(
                [sys.executable, "-c", SNIPPET.format(query=query)], capture_output=True, text=True, check=True
            ).stdout.split()
            imports.append(float(out[0]))
            firsts.append(float(out[1]))
        print(
            f"{name:32s} first query {1000 * statistics.median(firsts):7.1f} ms"
            f"   (import modnas.tables {1000 * statistics.median(imports):6.1f} ms)"
        )


if __name__ == "__main__":
    main()
