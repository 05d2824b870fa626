"""Pareto fronts, hypervolume and IGD / IGD+ on small hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modnas.errors import ModnasError
from modnas.evaluation.pareto import hypervolume, igd, igd_plus, nondominated_mask, pareto_front

STAIRCASE = [(0.2, 0.6), (0.4, 0.3), (0.7, 0.1)]
# Sweep along the first objective with reference (1, 1):
# (0.4 - 0.2) * (1 - 0.6) + (0.7 - 0.4) * (1 - 0.3) + (1 - 0.7) * (1 - 0.1) = 0.08 + 0.21 + 0.27
STAIRCASE_HV = 0.56


# -- hypervolume ---------------------------------------------------------------------------------------------


def test_hv_single_point():
    assert hypervolume([[0.5, 0.5]], [1, 1]) == pytest.approx(0.25)


def test_hv_scalar_reference_is_broadcast():
    assert hypervolume([[0.5, 0.5]], 1.0) == pytest.approx(hypervolume([[0.5, 0.5]], [1.0, 1.0]))


def test_hv_staircase():
    assert hypervolume(STAIRCASE, [1, 1]) == pytest.approx(STAIRCASE_HV)


def test_hv_staircase_inclusion_exclusion():
    """The same value from the union of the three boxes by inclusion-exclusion."""
    boxes = [(1 - x) * (1 - y) for x, y in STAIRCASE]  # 0.32, 0.42, 0.27
    pair = (1 - 0.4) * (1 - 0.6) + (1 - 0.7) * (1 - 0.3) + (1 - 0.7) * (1 - 0.6)
    triple = (1 - 0.7) * (1 - 0.6)
    assert hypervolume(STAIRCASE, [1, 1]) == pytest.approx(sum(boxes) - pair + triple)


def test_hv_is_order_independent():
    assert hypervolume(STAIRCASE[::-1], [1, 1]) == pytest.approx(STAIRCASE_HV)


@pytest.mark.parametrize("extra", [[(0.4, 0.3)], [(0.2, 0.6), (0.2, 0.6)], STAIRCASE])
def test_hv_duplicates_do_not_change_it(extra):
    assert hypervolume(STAIRCASE + extra, [1, 1]) == pytest.approx(STAIRCASE_HV)


@pytest.mark.parametrize("dominated", [(0.5, 0.5), (0.9, 0.9), (0.4, 0.6), (0.7, 0.3)])
def test_hv_dominated_point_adds_nothing(dominated):
    """Strictly and weakly dominated points (the last two tie with a front point in one objective)."""
    assert hypervolume([*STAIRCASE, dominated], [1, 1]) == pytest.approx(STAIRCASE_HV)


@pytest.mark.parametrize("outside", [(1.2, 0.05), (0.05, 1.0), (1.0, 1.0), (2.0, 3.0)])
def test_hv_points_outside_reference_box_add_nothing(outside):
    assert hypervolume([*STAIRCASE, outside], [1, 1]) == pytest.approx(STAIRCASE_HV)
    assert hypervolume([outside], [1, 1]) == 0.0


def test_hv_mixed_inside_and_outside():
    assert hypervolume([(0.5, 0.5), (1.5, 0.0), (0.0, 1.5)], [1, 1]) == pytest.approx(0.25)


def test_hv_other_reference_point():
    assert hypervolume([[0.5, 0.5]], [2.0, 1.0]) == pytest.approx(1.5 * 0.5)


def test_hv_three_objectives():
    pts = [(0.5, 0.5, 0.5), (0.0, 0.9, 0.9)]
    # union of a 0.5^3 cube and a 1 x 0.1 x 0.1 slab overlapping in 0.5 x 0.1 x 0.1
    assert hypervolume(pts, 1.0) == pytest.approx(0.125 + 0.01 - 0.005)


@pytest.mark.parametrize("empty", [np.zeros((0, 2)), np.zeros((0, 3))])
def test_hv_empty_is_zero(empty):
    assert hypervolume(empty, 1.0) == 0.0


@pytest.mark.parametrize("bad", [[[math.nan, 0.5]], [[0.5, math.inf]], [[-math.inf, 0.2], [0.1, 0.1]]])
def test_hv_non_finite_input_raises(bad):
    with pytest.raises(ModnasError, match="NaN or infinite"):
        hypervolume(bad, 1.0)


@pytest.mark.parametrize("bad_shape", [[0.5, 0.5], [[[0.5, 0.5]]]])
def test_hv_wrong_shape_raises(bad_shape):
    with pytest.raises(ModnasError, match="2-D"):
        hypervolume(bad_shape, 1.0)


# -- non-dominated sets --------------------------------------------------------------------------------------

DUPES = np.array([(0.2, 0.5), (0.2, 0.5), (0.5, 0.2), (0.6, 0.6), (0.5, 0.2), (0.3, 0.5)])


def test_nondominated_mask_keeps_all_duplicates_by_default():
    np.testing.assert_array_equal(nondominated_mask(DUPES), [True, True, True, False, True, False])


def test_nondominated_mask_keeps_one_copy_without_duplicates():
    mask = nondominated_mask(DUPES, keep_duplicates=False)
    assert mask.dtype == bool and mask.shape == (len(DUPES),)
    assert mask[[0, 1]].sum() == 1 and mask[[2, 4]].sum() == 1
    assert not mask[3] and not mask[5]


def test_nondominated_mask_empty():
    mask = nondominated_mask(np.zeros((0, 2)))
    assert mask.shape == (0,) and mask.dtype == bool


def test_nondominated_mask_staircase_all_kept():
    assert nondominated_mask(np.array(STAIRCASE)).all()


def test_pareto_front_sorted_distinct():
    front = pareto_front(DUPES[::-1])
    np.testing.assert_array_equal(front, [(0.2, 0.5), (0.5, 0.2)])


def test_pareto_front_sorted_by_first_objective():
    pts = np.array([(0.7, 0.1), (0.9, 0.9), (0.2, 0.6), (0.4, 0.3), (0.4, 0.3)])
    np.testing.assert_array_equal(pareto_front(pts), STAIRCASE)


def test_pareto_front_empty():
    assert pareto_front(np.zeros((0, 2))).shape == (0, 2)


def test_nondominated_mask_nan_raises():
    with pytest.raises(ModnasError):
        nondominated_mask(np.array([(0.1, math.nan)]))


# -- IGD / IGD+ ----------------------------------------------------------------------------------------------

A = np.array([(0.2, 0.6), (0.6, 0.2)])
Z = np.array([(0.0, 0.5), (0.5, 0.0), (0.3, 0.3)])
# nearest approximation point to each reference point (a - z):
#   (0, .5) -> (.2, .6): (.2, .1)   d = sqrt(.05), d+ = sqrt(.05)
#   (.5, 0) -> (.6, .2): (.1, .2)   d = sqrt(.05), d+ = sqrt(.05)
#   (.3,.3) -> either:   (-.1, .3)  d = sqrt(.1),  d+ = .3
IGD_AZ = (2 * math.sqrt(0.05) + math.sqrt(0.1)) / 3
IGD_PLUS_AZ = (2 * math.sqrt(0.05) + 0.3) / 3


def _igd_plus_by_hand(points: np.ndarray, ref: np.ndarray) -> float:
    diff = np.maximum(points[None, :, :] - ref[:, None, :], 0.0)
    return float(np.sqrt((diff**2).sum(-1)).min(axis=1).mean())


def test_igd_hand_computed():
    assert igd(A, Z) == pytest.approx(IGD_AZ)


def test_igd_plus_hand_computed():
    assert igd_plus(A, Z) == pytest.approx(IGD_PLUS_AZ)
    assert igd_plus(A, Z) == pytest.approx(_igd_plus_by_hand(A, Z))


def test_igd_plus_ignores_dominating_distance():
    """A point that dominates the reference is 0.5 away in IGD but 0 away in IGD+."""
    assert igd([(0.0, 0.0)], [(0.3, 0.4)]) == pytest.approx(0.5)
    assert igd_plus([(0.0, 0.0)], [(0.3, 0.4)]) == pytest.approx(0.0)


def test_igd_of_reference_itself_is_zero():
    assert igd(Z, Z) == pytest.approx(0.0)
    assert igd_plus(Z, Z) == pytest.approx(0.0)


def test_igd_plus_random_against_formula():
    rng = np.random.default_rng(7)
    pts, ref = rng.random((9, 2)), rng.random((5, 2))
    assert igd_plus(pts, ref) == pytest.approx(_igd_plus_by_hand(pts, ref))


@pytest.mark.parametrize("indicator", [igd, igd_plus])
def test_indicators_nan_for_empty_points(indicator):
    assert math.isnan(indicator(np.zeros((0, 2)), Z))


@pytest.mark.parametrize("indicator", [igd, igd_plus])
def test_indicators_nan_input_raises(indicator):
    with pytest.raises(ModnasError, match="NaN"):
        indicator(np.array([(math.nan, 0.1)]), Z)
    with pytest.raises(ModnasError, match="reference front"):
        indicator(A, np.array([(0.1, math.inf)]))
