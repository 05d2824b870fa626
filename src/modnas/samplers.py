"""Discrete samplers that turn architecture logits into one-hot choices with a usable gradient.

Logits have shape ``(..., num_ops)``; every row (last dim) is one categorical choice, so the same code serves NB201's
``(6, 5)`` logits, a batch of them, or any other search space.

* :func:`reinmax` -- ReinMax (Liu et al. 2023), MODNAS' default sampler: an exact one-hot sample from
  ``softmax(logits)`` in the forward pass and a second-order (Heun) gradient estimate in the backward pass.
* :func:`gdas` -- GDAS' hard Gumbel-softmax with a straight-through gradient.
* :class:`Sampler` and :func:`make_sampler` wrap both behind one interface with a temperature schedule and an
  ``argmax`` for evaluation.

All randomness comes from torch's global RNG or from an explicit ``torch.Generator``, so seeding makes runs repeatable.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from modnas.errors import ModnasError

#: GDAS re-draws a sample whose Gumbel noise or probabilities are not finite; past this many tries the logits
#: themselves must be broken, and looping on would never end.
MAX_REDRAWS = 100


def _check_tau(tau: float, what: str = "tau") -> float:
    try:
        value = float(tau)
    except (TypeError, ValueError):
        raise ModnasError(f"{what} must be a positive number, got {tau!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ModnasError(f"{what} must be a positive number, got {tau!r}")
    return value


def _check_logits(logits: Tensor) -> Tensor:
    if not isinstance(logits, Tensor):
        raise ModnasError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() == 0 or logits.shape[-1] == 0 or not logits.is_floating_point():
        raise ModnasError(
            f"logits must be a floating tensor of shape (..., num_ops) with num_ops >= 1, "
            f"got {logits.dtype} of shape {tuple(logits.shape)}"
        )
    return logits


class _ReinMax(torch.autograd.Function):
    """ReinMax as an autograd function; outputs ``(one-hot sample D, p = softmax(logits))``."""

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, tau: float, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        probs = logits.softmax(dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        # one multinomial draw per row of the 2-D view: the same RNG use as the published package, so equal seeds
        # give equal samples
        index = torch.multinomial(flat, num_samples=1, replacement=True, generator=generator)
        sample = torch.zeros_like(flat).scatter_(-1, index, 1.0).view_as(probs)
        ctx.tau = tau
        ctx.save_for_backward(logits, probs, sample)
        return sample, probs

    @staticmethod
    def backward(ctx: Any, grad_sample: Tensor, grad_probs: Tensor) -> tuple[Tensor, None, None]:
        logits, probs, sample = ctx.saved_tensors
        # Heun step: the softmax Jacobian at the midpoint pi~ = (softmax(logits / tau) + D) / 2, applied to 2g ...
        midpoint = 0.5 * ((logits / ctx.tau).softmax(dim=-1) + sample)
        twice = 2.0 * grad_sample
        second = midpoint * (twice - (twice * midpoint).sum(dim=-1, keepdim=True))
        # ... minus half the straight-through (first-order) term at p; the gradient reaching p itself goes through
        # the same Jacobian, so it is folded in here
        upstream = grad_probs - 0.5 * grad_sample
        first = probs * (upstream - (upstream * probs).sum(dim=-1, keepdim=True))
        grad = first + second
        # logits are shift-invariant under softmax, so only the centred gradient is meaningful
        return grad - grad.mean(dim=-1, keepdim=True), None, None


def reinmax(
    logits: Tensor, tau: float = 1.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """ReinMax: a one-hot sample from ``softmax(logits)`` per row, and ``softmax(logits)``.

    Backward (g = gradient at the sample, q = gradient at the probabilities, p = softmax(logits),
    pi~ = (softmax(logits / tau) + D) / 2):
    ``grad = [2g * pi~ - pi~ <2g, pi~>] + [(q - g/2) * p - p <q - g/2, p>]``, then the row mean is subtracted.
    ``tau`` only enters the backward pass, as in ``reinmax==0.1.0``.
    """
    _check_logits(logits)
    return _ReinMax.apply(logits, _check_tau(tau), generator)


def gdas(logits: Tensor, tau: float, generator: torch.Generator | None = None) -> Tensor:
    """GDAS' hard Gumbel-softmax: one-hot ``argmax((log_softmax(logits) + Gumbel) / tau)`` per row.

    The forward value is exactly one-hot; the gradient is that of the soft sample (straight-through).
    Draws whose Gumbel noise or soft sample is not finite are re-drawn, as in GDAS.
    """
    _check_logits(logits)
    tau = _check_tau(tau)
    log_probs = logits.log_softmax(dim=-1)
    for _ in range(MAX_REDRAWS):
        # -log(Exp(1)) is Gumbel(0, 1); an Exp draw of exactly 0 gives +inf, hence the re-draw
        gumbels = -torch.empty_like(logits).exponential_(generator=generator).log()
        soft = ((log_probs + gumbels) / tau).softmax(dim=-1)
        if bool(torch.isfinite(gumbels).all()) and bool(torch.isfinite(soft).all()):
            break
    else:
        raise ModnasError(f"GDAS drew no finite sample in {MAX_REDRAWS} tries; the logits contain NaN or inf")
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    # straight-through: the value is `hard` itself (soft - soft == 0 exactly), the gradient is the soft sample's
    return hard + (soft - soft.detach())


def argmax_onehot(logits: Tensor) -> Tensor:
    """The evaluation-time choice: one-hot of ``argmax(logits)`` per row (first index on ties), no gradient."""
    _check_logits(logits)
    index = logits.detach().argmax(dim=-1, keepdim=True)
    return torch.zeros_like(logits, requires_grad=False).scatter_(-1, index, 1.0)


def _check_fraction(fraction: float) -> float:
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise ModnasError(f"search progress must be a number in [0, 1], got {fraction!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ModnasError(f"search progress must be a number in [0, 1], got {fraction!r}")
    return value


class Sampler(ABC):
    """A way to draw one-hot architectures from logits during search.

    ``generator`` (optional) must live on the logits' device; without one, torch's global RNG is used.
    """

    name: str = ""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    @property
    @abstractmethod
    def tau(self) -> float:
        """The temperature the next call uses."""

    @abstractmethod
    def __call__(self, logits: Tensor) -> Tensor:
        """A one-hot sample per row of ``logits`` that carries a gradient back to ``logits``."""

    def set_progress(self, fraction: float) -> None:
        """Tell the sampler how far the search is (0 = start, 1 = last epoch), for temperature schedules."""
        _check_fraction(fraction)

    def argmax(self, logits: Tensor) -> Tensor:
        """The deterministic evaluation-time choice (no sampling)."""
        return argmax_onehot(logits)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tau={self.tau:g})"


class ReinMaxSampler(Sampler):
    """ReinMax with a fixed temperature (MODNAS uses tau = 1 throughout)."""

    name = "reinmax"

    def __init__(self, tau: float = 1.0, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        self._tau = _check_tau(tau)

    @property
    def tau(self) -> float:
        return self._tau

    def __call__(self, logits: Tensor) -> Tensor:
        return reinmax(logits, self._tau, self.generator)[0]


class GDASSampler(Sampler):
    """GDAS with tau annealed linearly from ``tau_max`` (progress 0) to ``tau_min`` (progress 1)."""

    name = "gdas"

    def __init__(
        self, tau_max: float = 10.0, tau_min: float = 1.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(generator)
        self.tau_max = _check_tau(tau_max, "tau_max")
        self.tau_min = _check_tau(tau_min, "tau_min")
        if self.tau_min > self.tau_max:
            raise ModnasError(f"tau_min ({tau_min}) must not exceed tau_max ({tau_max})")
        self._tau = self.tau_max

    @property
    def tau(self) -> float:
        return self._tau

    def set_progress(self, fraction: float) -> None:
        value = _check_fraction(fraction)
        self._tau = self.tau_max - (self.tau_max - self.tau_min) * value

    def __call__(self, logits: Tensor) -> Tensor:
        return gdas(logits, self._tau, self.generator)


SAMPLERS: dict[str, type[Sampler]] = {"reinmax": ReinMaxSampler, "gdas": GDASSampler}


def make_sampler(name: str, **kwargs: Any) -> Sampler:
    """Build a sampler by name (``reinmax`` or ``gdas``); keyword arguments go to its constructor."""
    key = str(name).strip().lower()
    if key not in SAMPLERS:
        raise ModnasError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    try:
        return SAMPLERS[key](**kwargs)
    except TypeError as err:  # a misspelt option: report it as a user error, not a traceback
        raise ModnasError(f"bad option for sampler {key!r}: {err}") from None
