"""Picking one architecture: the most accurate within limits, the closest when none qualifies, and the knee."""

from __future__ import annotations

import numpy as np
import pytest

from modnas.errors import ModnasError
from modnas.evaluation.selection import knee_index, make_limits, select

# error %, latency ms of five candidates (rows 0-3 non-dominated, row 4 dominated by row 1)
ERROR = np.array([5.0, 6.0, 9.0, 20.0, 7.0])
LATENCY = np.array([10.0, 4.0, 2.0, 1.0, 5.0])


def test_most_accurate_within_a_latency_limit():
    chosen = select(ERROR, {"latency_ms": LATENCY}, make_limits(max_latency_ms=4.5))
    assert chosen.index == 1 and chosen.satisfied and chosen.violation == 0
    assert chosen.n_feasible == 3
    assert "most accurate" in chosen.note and "latency <= 4.5 ms" in chosen.note


def test_a_limit_exactly_met_counts_as_met():
    assert select(ERROR, {"latency_ms": LATENCY}, make_limits(max_latency_ms=2.0)).index == 2


def test_no_architecture_under_the_limit_gives_the_closest_with_a_note():
    chosen = select(ERROR, {"latency_ms": LATENCY}, make_limits(max_latency_ms=0.5))
    assert chosen.index == 3  # 1 ms: 100 % over; the next (2 ms) is 300 % over
    assert not chosen.satisfied and chosen.n_feasible == 0
    assert chosen.violation == pytest.approx(1.0)
    assert chosen.note.startswith("no architecture of the 5 meets latency <= 0.5 ms; picked the closest")
    assert "100.0 % past the limit" in chosen.note and "\n" not in chosen.note


def test_closest_is_the_smallest_largest_relative_violation_across_limits():
    # limits: latency <= 2 ms, accuracy >= 95 %. Row 2 misses accuracy by 4/95 = 4.2 %, row 1 misses latency
    # by 100 % and accuracy by 1/95: row 2 is closer although row 1 is more accurate
    limits = make_limits(max_latency_ms=2.0, min_accuracy=95.0)
    chosen = select(ERROR, {"latency_ms": LATENCY, "accuracy": 100 - ERROR}, limits)
    assert chosen.index == 2 and not chosen.satisfied
    assert chosen.violation == pytest.approx(4 / 95)
    assert "accuracy 91" in chosen.note and "latency" not in chosen.note.split("closest")[1]


def test_min_accuracy_and_energy_limits():
    energy = np.array([3.0, 1.0, 0.5, 0.2, 0.9])
    values = {"latency_ms": LATENCY, "energy_mJ": energy, "accuracy": 100 - ERROR}
    assert select(ERROR, values, make_limits(min_accuracy=92.5)).index == 0
    assert select(ERROR, values, make_limits(max_energy_mj=0.95)).index == 4  # 7 % error beats row 2's 9 %
    assert select(ERROR, values, make_limits(max_energy_mj=0.95, max_latency_ms=3)).index == 2


def test_ties_go_to_the_first_candidate():
    assert select(np.array([5.0, 5.0]), {"latency_ms": np.array([1.0, 1.0])}, make_limits(max_latency_ms=2)).index == 0


def test_knee_of_a_convex_front_is_its_bend():
    # a front with a clear bend at (1, 1): both extremes are far from it
    points = np.array([[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [0.5, 5.0], [5.0, 0.5]])
    assert knee_index(points) == 1
    # order and dominated points do not matter
    shuffled = np.array([[5.0, 0.5], [2.0, 2.0], [10.0, 0.0], [1.0, 1.0], [0.0, 10.0]])
    assert knee_index(shuffled) == 3


def test_knee_is_invariant_to_the_scale_of_each_objective():
    points = np.array([[0.0, 10.0], [1.0, 1.0], [10.0, 0.0], [0.5, 5.0], [5.0, 0.5]])
    assert knee_index(points * np.array([[100.0, 0.001]])) == 1


def test_knee_of_a_straight_front_goes_to_the_lowest_first_objective():
    points = np.array([[2.0, 1.0], [1.0, 2.0], [0.0, 3.0]])
    assert knee_index(points) == 2
    assert knee_index(np.array([[3.0, 4.0]])) == 0


def test_knee_in_three_objectives():
    points = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.2, 0.2, 0.2], [0.5, 0.5, 0.4]])
    assert knee_index(points) == 3


def test_knee_within_limits():
    objectives = np.stack([ERROR, LATENCY], axis=1)
    free = select(ERROR, {"latency_ms": LATENCY}, rule="knee", objectives=objectives)
    assert free.satisfied and free.index == knee_index(objectives)
    # rows 1 and 2 and 3 meet 4 ms; among them (6,4), (9,2), (20,1) the bend is at (9, 2)
    limited = select(ERROR, {"latency_ms": LATENCY}, make_limits(max_latency_ms=4), rule="knee", objectives=objectives)
    assert limited.index == 2 and "knee" in limited.note


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_latency_ms": 0.0}, "max-latency-ms"),
        ({"max_latency_ms": -1.0}, "max-latency-ms"),
        ({"max_energy_mj": float("nan")}, "max-energy-mj"),
        ({"min_accuracy": 0.0}, "min-accuracy"),
        ({"min_accuracy": 101.0}, "min-accuracy"),
    ],
)
def test_bad_limits_are_one_line_errors(kwargs, needle):
    with pytest.raises(ModnasError, match=needle):
        make_limits(**kwargs)


def test_bad_rule_and_missing_values():
    with pytest.raises(ModnasError, match="knee"):
        select(ERROR, {}, rule="pareto")
    with pytest.raises(ModnasError, match="energy"):
        select(ERROR, {"latency_ms": LATENCY}, make_limits(max_energy_mj=1.0))
    with pytest.raises(ModnasError, match="no architecture"):
        select(np.array([]), {})
