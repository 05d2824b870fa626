"""ReinMax / GDAS samplers: exact one-hot forward, correct sampling distribution, hand-checked gradients."""

from __future__ import annotations

import math

import pytest
import reinmax as published  # reinmax==0.1.0, the package MODNAS uses
import torch

from modnas.errors import ModnasError
from modnas.samplers import (
    MAX_REDRAWS,
    GDASSampler,
    ReinMaxSampler,
    argmax_onehot,
    gdas,
    make_sampler,
    reinmax,
)


def _assert_one_hot(x: torch.Tensor) -> None:
    assert torch.equal(x, torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).to(x.dtype))


def _sample_with(
    target: int, logits: torch.Tensor, tau: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Re-seed until ReinMax draws op ``target`` (deterministic: the first matching seed is always the same)."""
    for seed in range(1000):
        torch.manual_seed(seed)
        x = logits.clone().requires_grad_()
        sample, probs = reinmax(x, tau)
        if int(sample.argmax()) == target:
            return x, sample, probs
    raise AssertionError("target op never drawn")


# --- forward ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (6, 5), (4, 6, 5), (3, 7)])
def test_reinmax_forward_is_exact_one_hot_and_returns_softmax(shape):
    torch.manual_seed(0)
    logits = 3 * torch.randn(shape)
    sample, probs = reinmax(logits)
    assert sample.shape == probs.shape == logits.shape
    _assert_one_hot(sample)
    torch.testing.assert_close(probs, logits.softmax(-1))


@pytest.mark.parametrize("tau", [10.0, 1.0, 0.1])
def test_gdas_forward_is_exact_one_hot(tau):
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 5, requires_grad=True)
    out = gdas(logits, tau)
    assert out.shape == logits.shape and out.requires_grad
    _assert_one_hot(out.detach())


def test_samplers_forward_is_one_hot_with_gradient():
    torch.manual_seed(0)
    for sampler in (ReinMaxSampler(), GDASSampler()):
        logits = torch.randn(6, 5, requires_grad=True)
        out = sampler(logits)
        _assert_one_hot(out.detach())
        (out * torch.arange(5.0)).sum().backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0


def _chi_square(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


# 3 degrees of freedom: P(chi2 > 16.27) = 0.001, P(chi2 > 200) ~ 0
CHI2_3DOF_999 = 16.27


@pytest.mark.parametrize("tau", [1.0, 5.0])
def test_reinmax_sample_frequencies_match_softmax(tau):
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    logits = probs.log().expand(20000, 4)
    torch.manual_seed(123)
    sample, _ = reinmax(logits, tau)  # tau only shapes the backward pass: samples follow softmax(logits)
    counts = sample.sum(0)
    assert _chi_square(counts, probs) < CHI2_3DOF_999
    # the check has power: the same counts are far from uniform and from softmax(logits / 5)
    assert _chi_square(counts, torch.full((4,), 0.25, dtype=torch.float64)) > 200
    assert _chi_square(counts, (probs.log() / 5).softmax(-1)) > 200


def test_gdas_sample_frequencies_match_softmax_at_any_tau():
    # Gumbel-max: argmax(log p + G) ~ Categorical(p), and dividing by tau does not move the argmax
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    logits = probs.log().expand(20000, 4)
    gen = torch.Generator().manual_seed(5)
    for tau in (10.0, 1.0):
        counts = gdas(logits, tau, generator=gen).sum(0)
        assert _chi_square(counts, probs) < CHI2_3DOF_999


def test_seeding_makes_samples_reproducible_and_generator_leaves_global_rng_alone():
    logits = torch.randn(50, 6, 5)
    for sampler_fn in (lambda x, g=None: reinmax(x, 1.0, g)[0], lambda x, g=None: gdas(x, 3.0, g)):
        torch.manual_seed(11)
        a = sampler_fn(logits)
        torch.manual_seed(11)
        b = sampler_fn(logits)
        assert torch.equal(a, b)
        state = torch.get_rng_state()
        c = sampler_fn(logits, torch.Generator().manual_seed(3))
        d = sampler_fn(logits, torch.Generator().manual_seed(3))
        assert torch.equal(c, d)
        assert torch.equal(torch.get_rng_state(), state)
    sampler_a = ReinMaxSampler(generator=torch.Generator().manual_seed(9))
    sampler_b = ReinMaxSampler(generator=torch.Generator().manual_seed(9))
    assert torch.equal(sampler_a(logits), sampler_b(logits))


# --- gradients ----------------------------------------------------------------------------------------------


def test_reinmax_gradient_by_hand_tau_1():
    # p = (0.2, 0.3, 0.5), D = e_2, g = (1, 2, 3):
    # pi~ = (p + D) / 2 = (0.1, 0.15, 0.75); <2g, pi~> = 5.3; pi~ * (2g - 5.3) = (-0.33, -0.195, 0.525)
    # h = -g/2 = (-0.5, -1, -1.5); <h, p> = -1.15; p * (h + 1.15) = (0.13, 0.045, -0.175)
    # sum = (-0.2, -0.15, 0.35), row mean 0
    logits = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64).log()
    x, sample, _ = _sample_with(2, logits, 1.0)
    (sample * torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[-0.2, -0.15, 0.35]], dtype=torch.float64))


def test_reinmax_gradient_by_hand_tau_2():
    # logits (0, 0, ln 4): p = (1/6, 1/6, 2/3), softmax(logits / 2) = (1/4, 1/4, 1/2); D = e_0, g = (1, 2, 3):
    # pi~ = (5/8, 1/8, 1/4); <2g, pi~> = 13/4; pi~ * (2g - 13/4) = (-25/32, 3/32, 11/16)
    # <-g/2, p> = -5/4; p * (-g/2 + 5/4) = (1/8, 1/24, -1/6)
    # sum = (-21/32, 13/96, 25/48)
    logits = torch.tensor([[0.0, 0.0, math.log(4.0)]], dtype=torch.float64)
    x, sample, _ = _sample_with(0, logits, 2.0)
    (sample * torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([[-21 / 32, 13 / 96, 25 / 48]], dtype=torch.float64))


def test_reinmax_gradient_through_probs_is_the_softmax_jacobian():
    logits = torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64).log().requires_grad_()
    torch.manual_seed(0)
    _, probs = reinmax(logits)
    (probs * torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)).sum().backward()
    # d p_0 / d logits = p_0 (e_0 - p) = 0.2 * (0.8, -0.3, -0.5)
    torch.testing.assert_close(logits.grad, torch.tensor([[0.16, -0.06, -0.1]], dtype=torch.float64))


@pytest.mark.parametrize("shape", [(6, 5), (3, 6, 5), (7, 4)])
@pytest.mark.parametrize("tau", [1.0, 0.5, 2.5])
def test_reinmax_matches_published_package(shape, tau):
    gen = torch.Generator().manual_seed(100 * sum(shape) + int(10 * tau))
    logits = 2 * torch.randn(shape, generator=gen, dtype=torch.float64)
    w_sample = torch.randn(shape, generator=gen, dtype=torch.float64)
    w_probs = torch.randn(shape, generator=gen, dtype=torch.float64)
    ours, theirs = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    torch.manual_seed(2024)
    s1, p1 = reinmax(ours, tau)
    torch.manual_seed(2024)
    s2, p2 = published.reinmax(theirs, tau)
    assert torch.equal(s1, s2), "same seed must give the same sample"
    torch.testing.assert_close(p1, p2)
    ((s1 * w_sample).sum() + (p1 * w_probs).sum()).backward()
    ((s2 * w_sample).sum() + (p2 * w_probs).sum()).backward()
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=1e-12)
    assert ours.grad.abs().max() > 1e-3


def test_gdas_straight_through_gradient_by_hand():
    logits = [0.5, -1.0, 2.0]
    tau = 2.0
    # replay the generator to know the Gumbel noise of the call below
    exp = torch.empty(1, 3, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(7))
    gumbel = [-math.log(e) for e in exp[0].tolist()]
    lse = math.log(sum(math.exp(v) for v in logits))
    z = [(v - lse + g) / tau for v, g in zip(logits, gumbel)]
    soft = [math.exp(v) / sum(math.exp(u) for u in z) for v in z]
    upstream = [1.0, 2.0, 3.0]
    dot = sum(u * s for u, s in zip(upstream, soft))
    expected = [s * (u - dot) / tau for s, u in zip(soft, upstream)]  # (1 / tau) (diag(s) - s s^T) v

    x = torch.tensor([logits], dtype=torch.float64, requires_grad=True)
    out = gdas(x, tau, generator=torch.Generator().manual_seed(7))
    assert int(out.argmax()) == max(range(3), key=lambda i: soft[i])
    (out * torch.tensor([upstream], dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([expected], dtype=torch.float64))


def test_gdas_redraws_infinite_gumbel_noise(monkeypatch):
    original = torch.Tensor.exponential_
    calls = []

    def first_draw_zero(self, *args, **kwargs):
        calls.append(1)
        return self.zero_() if len(calls) == 1 else original(self, *args, **kwargs)  # Exp = 0 -> Gumbel = inf

    monkeypatch.setattr(torch.Tensor, "exponential_", first_draw_zero)
    out = gdas(torch.randn(6, 5), 1.0)
    assert len(calls) == 2
    _assert_one_hot(out)


def test_gdas_nan_logits_raise_after_bounded_redraws():
    with pytest.raises(ModnasError, match=f"{MAX_REDRAWS} tries"):
        gdas(torch.tensor([[0.0, float("nan"), 1.0]]), 1.0)


# --- interface ----------------------------------------------------------------------------------------------


def test_gdas_tau_schedule_is_linear_and_reinmax_keeps_tau():
    sampler = make_sampler("gdas", tau_max=10, tau_min=1)
    assert isinstance(sampler, GDASSampler) and sampler.tau == 10
    for fraction, tau in [(0.0, 10.0), (0.5, 5.5), (0.25, 7.75), (1.0, 1.0)]:
        sampler.set_progress(fraction)
        assert sampler.tau == pytest.approx(tau)
    rx = make_sampler("ReinMax", tau=1.0)
    assert isinstance(rx, ReinMaxSampler)
    for fraction in (0.0, 0.3, 1.0):
        rx.set_progress(fraction)
        assert rx.tau == 1.0
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ModnasError, match="progress"):
            sampler.set_progress(bad)
        with pytest.raises(ModnasError, match="progress"):
            rx.set_progress(bad)


def test_argmax_is_deterministic_one_hot_without_gradient():
    logits = torch.tensor([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]], requires_grad=True)
    expected = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # ties -> first index
    for sampler in (ReinMaxSampler(), GDASSampler()):
        out = sampler.argmax(logits)
        assert torch.equal(out, expected) and not out.requires_grad
    assert torch.equal(argmax_onehot(torch.randn(2, 6, 5)).sum(-1), torch.ones(2, 6))


def test_bad_names_and_options_raise_modnas_error():
    with pytest.raises(ModnasError, match="unknown sampler 'darts'"):
        make_sampler("darts")
    with pytest.raises(ModnasError, match="bad option"):
        make_sampler("reinmax", tau_max=3)
    with pytest.raises(ModnasError, match="tau_min"):
        GDASSampler(tau_max=1, tau_min=2)
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ModnasError, match="tau"):
            ReinMaxSampler(tau=bad)
        with pytest.raises(ModnasError, match="tau"):
            gdas(torch.zeros(5), bad)
    with pytest.raises(ModnasError, match="logits"):
        reinmax(torch.tensor(1.0))
    with pytest.raises(ModnasError, match="logits"):
        reinmax(torch.zeros(3, dtype=torch.long))
