"""The budget-counting oracle: the only way a baseline reads true objective values.

A baseline pays for an architecture the first time it reads its true accuracy; the device's hardware objectives
(latency, energy) come with that query and are not counted separately, as in MODNAS's benchmark mode where the
hardware values are known and only accuracy costs a training run. Reading an architecture again is free. Counting
is done by :class:`modnas.search.error_model.QueryBudget`, the same class that limits MODNAS, so both sides of the
comparison count queries in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modnas.errors import ModnasError
from modnas.problem import Problem, get_problem
from modnas.search.error_model import QueryBudget


class Oracle:
    """True ``objectives`` of a problem's architectures (canonical keys) on one device, for at most ``budget``
    distinct architectures.

    :meth:`query` returns the raw objective vector (error in %, latency in ms, ...), all minimised. Asking for a
    new architecture when the budget is spent, or for a malformed key, raises :class:`~modnas.errors.ModnasError`
    before anything is read.
    """

    def __init__(
        self, device: str, budget: int, objectives: Sequence[str] = ("error", "latency"),
        problem: Problem | str = "nb201",
    ) -> None:
        self.problem = get_problem(problem)
        self.device = device
        self.objectives = self.problem.check_objectives(objectives)
        self.problem.check_devices([device], self.objectives)
        self._budget = QueryBudget(budget, self.problem)
        self._values: dict[str, np.ndarray] = {}

    @property
    def budget(self) -> int:
        return self._budget.limit

    @property
    def used(self) -> int:
        """Distinct architectures whose accuracy has been read."""
        return self._budget.used

    @property
    def remaining(self) -> int:
        return self._budget.remaining

    @property
    def exhausted(self) -> bool:
        return self._budget.remaining == 0

    @property
    def queried(self) -> list[str]:
        """Canonical keys in the order they were first queried."""
        return list(self._budget.queried)

    def __contains__(self, key: object) -> bool:
        return key in self._budget

    def query(self, key: str) -> np.ndarray:
        """Objective values ``(M,)`` of one architecture; costs one query unless it was queried before."""
        if not isinstance(key, str):
            raise ModnasError(f"query one architecture key at a time, got {type(key).__name__}")
        if key not in self._values:
            if self._budget.remaining == 0:
                raise ModnasError(f"query budget of {self.budget} architectures on {self.device!r} is spent")
            self.problem.space.parse(key)  # a malformed key fails before anything is read
            error = float(self._budget.query([key])[0])
            hardware = self.problem.truth.evaluate([key], self.device, self.objectives[1:])[0]
            self._values[key] = np.concatenate([[error], hardware])
        return self._values[key].copy()

    def values(self) -> np.ndarray:
        """Objective values ``(n, M)`` of every queried architecture, in query order."""
        if not self._values:
            return np.zeros((0, len(self.objectives)))
        return np.stack([self._values[k] for k in self._budget.queried])
