"""Preference grids, random draws, validation and parsing."""

from __future__ import annotations

import math
import signal
from collections.abc import Callable

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.evaluation.preferences import (
    circle_rays,
    dirichlet,
    evaluation_preferences,
    parse_preference,
    scalarise,
    scalarised_argmin,
    simplex_grid,
    to_simplex,
    validate_preference,
)

# -- circle rays ---------------------------------------------------------------------------------------------


def test_circle_rays_shape_and_unit_norm():
    rays = circle_rays(24)
    assert rays.shape == (24, 2)
    np.testing.assert_allclose(np.linalg.norm(rays, axis=1), 1.0, atol=1e-12)


def test_circle_rays_endpoints_and_sign():
    rays = circle_rays(24)
    np.testing.assert_allclose(rays[0], [1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(rays[-1], [0.0, 1.0], atol=1e-5)
    assert (rays >= 0).all()
    assert (rays[0] != [1.0, 0.0]).any(), "the eps offset keeps the end rays off the axes"


def test_circle_rays_evenly_spaced_angles():
    angles = np.arctan2(*circle_rays(24).T[::-1])
    np.testing.assert_allclose(np.diff(angles), (math.pi / 2 - 2e-6) / 23, rtol=1e-9)


def test_circle_rays_hit_23_distinct_hpn_bins():
    """Spec section 9: round(100 cos t) of the 24 rays gives 23 distinct bins."""
    bins = np.round(100 * circle_rays(24)[:, 0]).astype(int)
    assert len(set(bins.tolist())) == 23
    assert bins.tolist()[:4] == [100, 100, 99, 98] and bins[-1] == 0


def test_circle_rays_rejects_zero():
    with pytest.raises(ModnasError):
        circle_rays(0)


# -- simplex grid --------------------------------------------------------------------------------------------


def test_simplex_grid_3_4():
    grid = simplex_grid(3, 4)
    assert grid.shape == (math.comb(6, 2), 3) == (15, 3)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)
    np.testing.assert_array_equal(grid * 4, np.round(grid * 4))
    assert (grid >= 0).all()
    assert len(np.unique(grid, axis=0)) == 15


def test_simplex_grid_contains_the_vertices():
    grid = {tuple(r) for r in simplex_grid(3, 4).tolist()}
    assert {(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.25, 0.25, 0.5)} <= grid


@pytest.mark.parametrize(("m", "p"), [(2, 1), (2, 5), (3, 1), (4, 3), (5, 2)])
def test_simplex_grid_counts(m, p):
    grid = simplex_grid(m, p)
    assert grid.shape == (math.comb(p + m - 1, m - 1), m)
    np.testing.assert_allclose(grid.sum(axis=1), 1.0)


@pytest.mark.parametrize(("m", "p"), [(0, 3), (3, 0)])
def test_simplex_grid_rejects_bad_sizes(m, p):
    with pytest.raises(ModnasError):
        simplex_grid(m, p)


# -- evaluation grid -----------------------------------------------------------------------------------------


def test_evaluation_preferences_two_objectives_are_the_circle_rays():
    np.testing.assert_array_equal(evaluation_preferences(2), circle_rays(24))


def test_evaluation_preferences_three_objectives_is_a_simplex_grid():
    prefs = evaluation_preferences(3)
    partitions = [p for p in range(1, 30) if np.array_equal(prefs, simplex_grid(3, p))]
    assert len(partitions) == 1
    # the largest grid with at most 24 points
    assert len(prefs) <= 24 < len(simplex_grid(3, partitions[0] + 1))
    np.testing.assert_allclose(prefs.sum(axis=1), 1.0)


def _within_seconds(seconds: int, fn: Callable[[], object]) -> object:
    """Run ``fn``, turning a hang into a TimeoutError after ``seconds`` (POSIX main thread)."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError(f"did not return within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        return fn()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("n_objectives", [0, 1])
def test_evaluation_preferences_rejects_fewer_than_two_objectives(n_objectives):
    """Refused, not looping for ever (for m = 1 the partition search never stops).

    The alarm only turns a hang into a failure: it is far above any machine's time for the call, so a loaded
    machine cannot fail the test.
    """
    with pytest.raises(ModnasError):
        _within_seconds(120, lambda: evaluation_preferences(n_objectives))


# -- Dirichlet draws -----------------------------------------------------------------------------------------


def test_dirichlet_on_the_simplex():
    draws = dirichlet(200, 3, np.random.default_rng(0))
    assert draws.shape == (200, 3)
    assert (draws >= 0).all()
    np.testing.assert_allclose(draws.sum(axis=1), 1.0)


def test_dirichlet_reproducible_with_seeded_generator():
    a = dirichlet(10, 3, np.random.default_rng(123))
    b = dirichlet(10, 3, np.random.default_rng(123))
    c = dirichlet(10, 3, np.random.default_rng(124))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("concentration", [0.0, -1.0, math.nan, math.inf])
def test_dirichlet_rejects_bad_concentration(concentration):
    with pytest.raises(ModnasError, match="concentration"):
        dirichlet(3, 2, np.random.default_rng(0), concentration=concentration)


# -- validation ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pref", "n_objectives", "message"),
    [
        ([-0.2, 1.2], None, "negative"),
        ([math.nan, 1.0], None, "NaN"),
        ([math.inf, 0.0], None, "infinite"),
        ([0.5, 0.5], 3, "entries"),
        ([0.2, 0.3, 0.5], 2, "entries"),
        ([0.0, 0.0], None, "all zeros"),
        ([0.3, 0.3], None, "sum to 1"),
        ([[0.5, 0.5], [0.2, 0.2]], None, "sum to 1"),
        ([], None, "vector"),
        ([[[0.5, 0.5]]], None, "vector"),
        (["a", "b"], None, "numbers"),
    ],
)
def test_validate_preference_rejects(pref, n_objectives, message):
    with pytest.raises(ModnasError, match=message):
        validate_preference(pref, n_objectives=n_objectives)


@pytest.mark.parametrize(
    "pref", [[0.3, 0.7], (1.0, 0.0), [0.2, 0.3, 0.5], np.array([[0.5, 0.5], [0.0, 1.0]])]
)
def test_validate_preference_accepts(pref):
    out = validate_preference(pref)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.asarray(pref, dtype=np.float64))


def test_batch_sum_error_reports_the_offending_sum_on_one_line():
    """errors.py: one-line messages naming the bad value; here the second row sums to 0.4, not 1."""
    with pytest.raises(ModnasError, match="sum to 1") as info:
        validate_preference([[0.5, 0.5], [0.2, 0.2]])
    message = str(info.value)
    assert "\n" not in message
    assert "0.4" in message


def test_validate_preference_tolerance_and_non_simplex():
    validate_preference([0.3, 0.7 + 1e-9])
    np.testing.assert_array_equal(validate_preference([2.0, 3.0], require_simplex=False), [2.0, 3.0])
    with pytest.raises(ModnasError, match="negative"):
        validate_preference([2.0, -3.0], require_simplex=False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-0.3,1.3", "negative"),
        ("nan,1", "NaN"),
        ("inf,0", "infinite"),
        ("0.3,0.3", "sum to 1"),
        ("0,0", "all zeros"),
        ("0.3;0.7", "comma-separated"),
        ("a,b", "comma-separated"),
        ("", "comma-separated"),
    ],
)
def test_parse_preference_rejects(text, message):
    with pytest.raises(ModnasError, match=message):
        parse_preference(text)


def test_parse_preference_wrong_length():
    with pytest.raises(ModnasError, match="entries"):
        parse_preference("0.5,0.5", n_objectives=3)


@pytest.mark.parametrize(
    ("text", "expected"), [("0.3,0.7", [0.3, 0.7]), (" 0.2, 0.3 ,0.5 ", [0.2, 0.3, 0.5]), ("1,0", [1.0, 0.0])]
)
def test_parse_preference_accepts(text, expected):
    np.testing.assert_allclose(parse_preference(text, n_objectives=len(expected)), expected)


def test_parse_preference_without_simplex_requirement():
    np.testing.assert_array_equal(parse_preference("1,3", require_simplex=False), [1.0, 3.0])


# -- rescaling -----------------------------------------------------------------------------------------------


def test_to_simplex_rescales():
    np.testing.assert_allclose(to_simplex(np.array([[1.0, 3.0], [2.0, 2.0]])), [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_allclose(to_simplex(np.array([0.0, 4.0])), [0.0, 1.0])


def test_to_simplex_of_circle_rays_keeps_direction():
    rays = circle_rays(24)
    simplex = to_simplex(rays)
    np.testing.assert_allclose(simplex.sum(axis=1), 1.0)
    np.testing.assert_allclose(simplex[:, 1] / simplex[:, 0], rays[:, 1] / rays[:, 0])


@pytest.mark.parametrize("bad", [[-1.0, 2.0], [0.0, 0.0], [math.nan, 1.0]])
def test_to_simplex_rejects(bad):
    with pytest.raises(ModnasError):
        to_simplex(np.array(bad))


# -- scalarised argmin ---------------------------------------------------------------------------------------


def test_scalarised_argmin_by_hand():
    objectives = np.array([[0.0, 1.0], [0.4, 0.4], [1.0, 0.0], [0.45, 0.45]])
    prefs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    np.testing.assert_array_equal(scalarised_argmin(prefs, objectives), [0, 1, 2])
    # the lowest index wins a tie; a masked candidate is never chosen
    np.testing.assert_array_equal(scalarised_argmin(prefs[:1], objectives[[0, 0]]), [0])
    allowed = np.array([True, False, True, True])
    np.testing.assert_array_equal(scalarised_argmin(prefs, objectives, allowed=allowed), [0, 3, 2])


def test_scalarised_argmin_keeps_leading_dimensions():
    rng = np.random.default_rng(0)
    objectives, prefs = rng.random((3, 50, 2)), to_simplex(circle_rays(7))
    best = scalarised_argmin(prefs, objectives)
    assert best.shape == (3, 7)
    for d in range(3):
        np.testing.assert_array_equal(best[d], (prefs @ objectives[d].T).argmin(axis=1))
    with pytest.raises(ModnasError, match="agree on M"):
        scalarised_argmin(prefs, rng.random((50, 3)))


def test_chebyshev_reaches_the_unsupported_middle_of_a_front():
    # a straight front: linear scalarisation picks one of its ends for every preference, Chebyshev the point where
    # the weighted objectives are equal
    front = np.array([[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]])
    prefs = np.array([[0.5, 0.5], [0.75, 0.25], [0.25, 0.75]])
    assert set(scalarised_argmin(prefs[1:], front).tolist()) <= {0, 4}
    np.testing.assert_array_equal(scalarised_argmin(prefs, front, method="chebyshev"), [2, 1, 3])
    # the augmentation breaks a tie of the max in favour of the point that is better in the other objective
    weak = np.array([[0.5, 0.5], [0.5, 0.3]])
    assert scalarised_argmin(prefs[:1], weak, method="chebyshev").tolist() == [1]
    # the same values from NumPy and torch, and a scale-free argmin (rays need not sum to one)
    values = scalarise(prefs[:, None, :], front[None], "chebyshev")
    torch_values = scalarise(torch.tensor(prefs)[:, None, :], torch.tensor(front)[None], "chebyshev")
    np.testing.assert_allclose(torch_values.numpy(), values)
    np.testing.assert_array_equal(scalarised_argmin(3 * prefs, front, method="chebyshev"), [2, 1, 3])
    with pytest.raises(ModnasError, match="unknown scalarisation 'tchebycheff'"):
        scalarise(prefs, front[:3], "tchebycheff")
