"""Every baseline spends exactly its budget, is reproducible under a seed and stays inside the space."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from modnas.baselines import METHODS, Oracle, initial_size, run_baseline
from modnas.baselines.methods import (
    _optuna_loop,
    crowding_distance,
    mutate,
    pareto_ranks,
)
from modnas.errors import ModnasError
from modnas.spaces.nb201.encoding import from_index, index_to_string, to_index
from modnas.spaces.nb201.space import NB201Space
from modnas.tables.nb201 import NUM_ARCHS

# GP is the slow one: a smaller budget keeps the suite in seconds while still leaving the start-up phase
BUDGETS = {"gp": 8}


@pytest.mark.parametrize("method", list(METHODS))
def test_budget_exact_deterministic_and_in_space(method):
    budget = BUDGETS.get(method, 30)
    first = run_baseline(method, "fpga", budget, seed=3)
    again = run_baseline(method, "fpga", budget, seed=3)
    assert len(first.queried) == budget
    assert len(set(first.queried)) == budget  # distinct: repeats never counted twice
    assert all(index_to_string(int(to_index(k))) == k for k in first.queried)  # canonical NB201 keys
    assert first.queried == again.queried
    assert first.budget == budget and first.device == "fpga" and first.seconds >= 0
    other = run_baseline(method, "fpga", budget, seed=4)
    assert other.queried != first.queried


def test_devices_get_independent_streams():
    a = run_baseline("random", "fpga", 10, seed=0)
    b = run_baseline("random", "pixel2", 10, seed=0)
    assert a.queried != b.queried


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "cmaes"}, "unknown baseline"),
        ({"budget": 0}, "budget"),
        ({"budget": NUM_ARCHS + 1}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, message):
    args = {"method": "random", "device": "fpga", "budget": 5, "seed": 0, **kwargs}
    with pytest.raises(ModnasError, match=message):
        run_baseline(**args)


def test_budget_dependent_settings():
    assert initial_size(200) == 20 and initial_size(11) == 3 and initial_size(1000) == 20
    assert run_baseline("morea", "fpga", 200, seed=0).settings == {"population_size": 20, "sample_size": 5}
    assert run_baseline("nsga2", "fpga", 11, seed=0).settings == {"population_size": 3}


class _Stuck(optuna.samplers.BaseSampler):
    """Always proposes the same architecture: the loop must still spend its budget and stop."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.choices[0]


def test_a_stuck_sampler_cannot_loop_forever():
    oracle = Oracle("fpga", 4)
    _optuna_loop(oracle, np.random.default_rng(0), _Stuck())
    assert oracle.used == 4


def test_mutate_changes_exactly_one_edge():
    rng = np.random.default_rng(0)
    space = NB201Space()
    for idx in (0, 1234, NUM_ARCHS - 1):
        child = mutate(index_to_string(idx), rng, space)
        assert int((from_index(int(to_index(child))) != from_index(idx)).sum()) == 1


def test_pareto_ranks_and_crowding():
    values = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [3.0, 3.0], [np.nan, 3.0]])
    ranks = pareto_ranks(values)
    assert ranks.tolist()[:4] == [0, 0, 0, 1]
    assert ranks[4] > 0  # a missing value never dominates
    crowd = crowding_distance(values[:4], ranks[:4])
    assert np.isinf(crowd[0]) and np.isinf(crowd[2]) and np.isfinite(crowd[1])
