"""Multi-objective search baselines on the NB201 table and the MODNAS-vs-baselines benchmark report.

``run_baseline(method, device, budget, seed)`` searches one device with true (error, latency) queries through a
budget-counting :class:`Oracle` and returns the distinct architectures it queried, in order; the shared scorer
(:func:`modnas.evaluation.scorer.score_keys`) turns any prefix of them into an HV.
"""

from modnas.baselines.methods import METHODS, BaselineResult, check_method, initial_size, run_baseline
from modnas.baselines.oracle import Oracle

__all__ = ["METHODS", "BaselineResult", "Oracle", "check_method", "initial_size", "run_baseline"]
