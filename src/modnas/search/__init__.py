"""The MODNAS search: one hypernetwork for every preference and device (benchmark and one-shot modes).

``search(config, out_dir)`` runs a search into a new run directory and returns its summary;
``resume_search(run_dir)`` continues an interrupted run from its last checkpoint;
``evaluate_run(run_dir)`` reads the per-device rows back (from ``summary.json``, or the last complete epoch of
``metrics.csv`` for an interrupted run); ``run_note(run_dir)`` is the caveat that goes with a one-shot run's HV.
"""

from modnas.search.run import evaluate_run, resume_search, run_note, search

__all__ = ["evaluate_run", "resume_search", "run_note", "search"]
