"""The MODNAS search: one hypernetwork for every preference and device (benchmark mode for now).

``search(config, out_dir)`` runs a search into a new run directory and returns its summary;
``evaluate_run(run_dir)`` reads the per-device rows back (from ``summary.json``, or the last complete epoch of
``metrics.csv`` for an interrupted run).
"""

from modnas.search.run import evaluate_run, search

__all__ = ["evaluate_run", "search"]
