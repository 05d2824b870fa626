"""MGDA min-norm solver: analytic 2-D cases, KKT conditions, brute-force comparison, aggregation and grad plumbing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from modnas.errors import ModnasError
from modnas.mgd import (
    MAX_ITER,
    aggregate,
    assign_flat_grad,
    flatten_grads,
    min_norm_solve,
    min_norm_weights,
    normalise_grads,
)


def t64(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def _check_simplex(w: torch.Tensor) -> None:
    assert (w >= 0).all()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)


# --- analytic cases -----------------------------------------------------------------------------------------


def test_orthogonal_unit_vectors_get_equal_weights():
    w = min_norm_weights(t64([[1, 0], [0, 1]]))
    torch.testing.assert_close(w, t64([0.5, 0.5]))


def test_unequal_orthogonal_vectors():
    # min over c of |(c, 2(1 - c))|^2 -> c = 0.8: point (0.8, 0.4)
    grads = t64([[1, 0], [0, 2]])
    direction, w = aggregate(grads, "mgda", normalise=False)
    torch.testing.assert_close(w, t64([0.8, 0.2]))
    torch.testing.assert_close(direction, t64([0.8, 0.4]))
    # normalised first, they are orthogonal unit vectors again
    direction, w = aggregate(grads, "mgda", normalise=True)
    torch.testing.assert_close(w, t64([0.5, 0.5]))
    torch.testing.assert_close(direction, t64([0.5, 0.5]))


def test_gradient_inside_the_hull_gets_no_weight():
    # g4 = 0.4 g1 + 0.2 g2 + 0.4 g3 lies inside the triangle; the min-norm point (0.5, 0.5) is only 0.5 g1 + 0.5 g2
    grads = t64([[1, 0], [0, 1], [1, 1], [0.8, 0.6]])
    res = min_norm_solve(grads)
    torch.testing.assert_close(res.weights, t64([0.5, 0.5, 0, 0]), atol=1e-6, rtol=0)
    assert res.norm_sq == pytest.approx(0.5)
    assert res.converged


def test_point_inside_the_hull_of_others_is_the_answer():
    # g3 = (0.2, 0.2) sits inside the hull of the others and is closer to 0 than any of their segments
    grads = t64([[1, -1], [-1, 1], [0.2, 0.2], [1, 1]])
    res = min_norm_solve(grads)
    _check_simplex(res.weights)
    torch.testing.assert_close(res.weights @ grads, t64([0.0, 0.0]), atol=1e-6, rtol=0)
    assert res.norm_sq == pytest.approx(0.0, abs=1e-9)


def test_identical_gradients():
    grads = t64([[3, 4], [3, 4], [3, 4]])
    res = min_norm_solve(grads)
    _check_simplex(res.weights)
    torch.testing.assert_close(res.weights @ grads, t64([3, 4]))
    assert res.norm_sq == pytest.approx(25.0)
    direction, _ = aggregate(grads, "mgda", normalise=True)
    torch.testing.assert_close(direction, t64([0.6, 0.8]))


@pytest.mark.parametrize("normalise", [False, True])
def test_zero_gradient_takes_all_the_weight_without_division_by_zero(normalise):
    grads = t64([[1, 0], [0, 0], [0, 1], [0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no 0/0 RuntimeWarning anywhere
        direction, w = aggregate(grads, "mgda", normalise=normalise)
        all_zero, w0 = aggregate(torch.zeros(3, 4), "mgda", normalise=normalise)
    torch.testing.assert_close(w, t64([0, 1, 0, 0]))
    assert torch.equal(direction, t64([0, 0]))
    assert torch.equal(w0, torch.tensor([1.0, 0, 0])) and torch.equal(all_zero, torch.zeros(4))
    assert torch.isfinite(normalise_grads(grads)).all()


def test_vertex_solution():
    # <g1, g_t> = 2 >= |g1|^2 = 1 for the others: g1 itself is the min-norm point
    grads = t64([[1, 0], [2, 1], [2, -1]])
    res = min_norm_solve(grads)
    assert torch.equal(res.weights, t64([1, 0, 0]))
    assert res.norm_sq == 1.0 and res.converged


def test_single_gradient():
    res = min_norm_solve(t64([[0.3, -4.0]]))
    assert torch.equal(res.weights, t64([1.0])) and res.iterations == 0


# --- larger problems ----------------------------------------------------------------------------------------


def _random_grads(t: int, d: int, seed: int, shared: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # a shared component makes the optimum an interior face with non-trivial weights, like real device gradients
    common = torch.randn(1, d, generator=gen, dtype=torch.float64)
    return torch.randn(t, d, generator=gen, dtype=torch.float64) + shared * common


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_thirteen_gradients_satisfy_kkt(seed):
    raw = _random_grads(13, 1000, seed)
    res = min_norm_solve(raw, normalise=True)
    g = normalise_grads(raw)
    d = res.weights @ g
    _check_simplex(res.weights)
    assert res.converged and 1 <= res.iterations <= MAX_ITER
    # optimality: every gradient has <g_t, d> >= |d|^2, so d is a common descent direction
    assert float((g @ d - d @ d).min()) >= -1e-5
    assert float(d @ d) == pytest.approx(res.norm_sq, rel=1e-9)
    assert (res.weights > 0).sum() >= 3  # a genuine interior-of-face solution, not a vertex or edge

    # unnormalised, with the tolerance scaled to the size of the gradients
    res_raw = min_norm_solve(raw)
    d_raw = res_raw.weights @ raw
    assert float((raw @ d_raw - d_raw @ d_raw).min()) >= -1e-5 * float((raw**2).sum(1).max())


def test_iteration_cap_is_real():
    raw = _random_grads(13, 1000, 0)
    res = min_norm_solve(raw, normalise=True, max_iter=2)
    assert res.iterations == 2 and not res.converged
    _check_simplex(res.weights)
    assert res.norm_sq >= min_norm_solve(raw, normalise=True).norm_sq
    with pytest.raises(ModnasError, match="max_iter"):
        min_norm_solve(raw, max_iter=0)


def _brute_force(grads: np.ndarray) -> tuple[np.ndarray, float]:
    gram = grads @ grads.T
    t = len(grads)
    out = minimize(
        lambda w: w @ gram @ w,
        np.full(t, 1.0 / t),
        jac=lambda w: 2 * gram @ w,
        bounds=[(0.0, 1.0)] * t,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert out.success
    return out.x, float(out.fun)


@pytest.mark.parametrize("seed,t,d", [(0, 3, 5), (1, 5, 8), (2, 6, 20), (3, 4, 3), (4, 8, 50)])
def test_matches_brute_force_slsqp(seed, t, d):
    grads = _random_grads(t, d, seed, shared=0.7)
    res = min_norm_solve(grads)
    w_ref, f_ref = _brute_force(grads.numpy())
    assert res.norm_sq == pytest.approx(f_ref, rel=1e-6, abs=1e-9)
    if d >= t:  # Gram matrix positive definite: the weights are unique too
        np.testing.assert_allclose(res.weights.numpy(), w_ref, atol=1e-4)


def test_weights_follow_dtype_and_device_of_the_input():
    w = min_norm_weights(torch.randn(4, 7))
    assert w.dtype == torch.float32 and w.shape == (4,)


# --- aggregation --------------------------------------------------------------------------------------------


def test_mean_and_sum_aggregation():
    grads = t64([[3, 4], [0, 2]])
    direction, w = aggregate(grads, "mean", normalise=False)
    torch.testing.assert_close(w, t64([0.5, 0.5]))
    torch.testing.assert_close(direction, t64([1.5, 3.0]))
    direction, w = aggregate(grads, "sum", normalise=True)
    torch.testing.assert_close(w, t64([1, 1]))
    torch.testing.assert_close(direction, t64([0.6, 1.8]))
    direction, w = aggregate(grads, "MGDA", normalise=False)
    _check_simplex(w)


def test_bad_inputs_raise_modnas_error():
    with pytest.raises(ModnasError, match="unknown gradient aggregation 'median'"):
        aggregate(t64([[1, 0]]), "median", normalise=False)
    with pytest.raises(ModnasError, match=r"shape \(T, D\)"):
        min_norm_weights(torch.zeros(5))
    with pytest.raises(ModnasError, match=r"shape \(T, D\)"):
        min_norm_weights(torch.zeros(0, 3))
    with pytest.raises(ModnasError, match=r"gradient\(s\) \[1\] contain NaN"):
        aggregate(t64([[1, 0], [float("nan"), 0]]), "mean", normalise=False)


# --- parameter plumbing -------------------------------------------------------------------------------------


def test_flatten_and_assign_round_trip():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    extra = torch.nn.Parameter(torch.zeros(2, 2))  # never used: no .grad
    params = [*net.parameters(), extra]
    net(torch.randn(5, 3)).square().sum().backward()
    flat = flatten_grads(params)
    total = sum(p.numel() for p in params)
    assert flat.shape == (total,)
    assert torch.equal(flat[:12], net[0].weight.grad.reshape(-1))
    assert torch.equal(flat[-4:], torch.zeros(4))  # the missing gradient is zeros

    new = torch.arange(total, dtype=torch.float32)
    assign_flat_grad(params, new)
    assert torch.equal(net[0].weight.grad, torch.arange(12.0).reshape(4, 3))
    assert torch.equal(extra.grad, torch.arange(total - 4, total, dtype=torch.float32).reshape(2, 2))
    assert torch.equal(flatten_grads(params), new)
    with pytest.raises(ModnasError, match=rf"expected \({total},\)"):
        assign_flat_grad(params, torch.zeros(total + 1))
    with pytest.raises(ModnasError, match="no parameters"):
        flatten_grads([])


def test_mgd_step_on_a_module_descends_for_every_task():
    # end to end: per-task gradients -> MGDA direction -> .grad; a small step lowers every task loss
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    x = torch.randn(32, 4)
    targets = [torch.randn(32, 3) for _ in range(3)]

    def losses() -> list[torch.Tensor]:
        return [torch.nn.functional.mse_loss(net(x), y) for y in targets]

    grads = []
    for loss in losses():
        net.zero_grad()
        loss.backward()
        grads.append(flatten_grads(net.parameters()))
    direction, _ = aggregate(torch.stack(grads), "mgda", normalise=True)
    before = [float(v.detach()) for v in losses()]
    assign_flat_grad(net.parameters(), direction)
    with torch.no_grad():
        for p in net.parameters():
            p -= 1e-2 * p.grad
    after = [float(v.detach()) for v in losses()]
    assert all(a < b for a, b in zip(after, before))
