"""The budget-counting oracle: the only way a baseline reads true objective values.

A baseline pays for an architecture the first time it reads its true accuracy; the device's hardware objectives
(latency, energy) come with that query and are not counted separately, as in MODNAS's benchmark mode where the
latency table is known and only accuracy costs a training run. Reading an architecture again is free. Counting
is done by :class:`modnas.search.error_model.QueryBudget`, the same class that limits MODNAS, so both sides of the
comparison count queries in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modnas.errors import ModnasError
from modnas.evaluation.scorer import check_objectives, objective_values
from modnas.search.error_model import QueryBudget
from modnas.tables.nb201 import check_index


class Oracle:
    """True ``objectives`` of NB201 architectures on one device, for at most ``budget`` distinct architectures.

    :meth:`query` returns the raw objective vector (error in %, latency in ms, ...), all minimised. Asking for a
    new architecture when the budget is spent, or for an index outside ``0..15624``, raises
    :class:`~modnas.errors.ModnasError` before anything is read.
    """

    def __init__(self, device: str, budget: int, objectives: Sequence[str] = ("error", "latency")) -> None:
        self.device = device
        self.objectives = check_objectives(objectives)
        self._budget = QueryBudget(budget)
        # hardware columns of the whole table are held, but a value is only handed out with its accuracy query
        self._hardware = np.stack([objective_values(o, device) for o in self.objectives[1:]], axis=1)
        self._values: dict[int, np.ndarray] = {}

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
    def queried(self) -> list[int]:
        """Canonical indices in the order they were first queried."""
        return list(self._budget.queried)

    def __contains__(self, index: object) -> bool:
        return index in self._budget

    def query(self, index: int) -> np.ndarray:
        """Objective values ``(M,)`` of one architecture; costs one query unless it was queried before."""
        idx = check_index(index)
        if idx.ndim != 0:
            raise ModnasError(f"query one architecture index at a time, got shape {idx.shape}")
        key = int(idx)
        if key not in self._values:
            if self._budget.remaining == 0:
                raise ModnasError(f"query budget of {self.budget} architectures on {self.device!r} is spent")
            error = float(self._budget.query([key])[0])
            self._values[key] = np.concatenate([[error], self._hardware[key]])
        return self._values[key].copy()

    def values(self) -> np.ndarray:
        """Objective values ``(n, M)`` of every queried architecture, in query order."""
        if not self._values:
            return np.zeros((0, len(self.objectives)))
        return np.stack([self._values[i] for i in self._budget.queried])
