"""Hypernetworks: (preference vector r, device embedding h) -> architecture logits alpha of shape (num_edges, num_ops).

* :class:`MetaHyperNetwork` -- MODNAS' NB201 hypernetwork, faithfully: K learned "virtual device" prototypes, one
  101-bin lookup table per prototype indexed by ``round(100 r_0)``, mixed with ``softmax(sin(E h / sqrt(d)))``.
  It ignores every preference component but the first, by design of the original.
* :class:`PreferenceMLPHyperNetwork` -- a small MLP on ``concat(r, h)`` that sees the whole preference vector, so it
  can trade off any number of objectives and is smooth in r.

Both take batched inputs: ``preference`` of shape (..., M) and ``device_embedding`` of shape (..., d), broadcast
against each other, and return logits of shape (..., num_edges, num_ops) with op columns in modnas' canonical order.

A space with ragged decisions (e.g. OFA: 17 resolutions but 3 kernel sizes) pads its one-hots to the widest decision.
Given the space's ``option_mask``, a hypernetwork learns outputs only for the real options and returns zeros in the
padding (which the space masks anyway): OFA has 152 real options in 46 x 17 = 782 padded cells, so the tables, their
gradients and the optimiser state are about 5x smaller. Dense spaces (NB201) compute exactly as without a mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError

#: Width of a HELP device embedding (latencies of 10 reference architectures); see :mod:`modnas.hardware.devices`.
DEFAULT_EMBEDDING_DIM = 10

TensorLike = Tensor | np.ndarray | Sequence[float] | Sequence[Sequence[float]]


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ModnasError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class HyperNetwork(nn.Module):
    """Common input handling for hypernetworks; subclasses implement :meth:`_logits` on flat batches."""

    #: Adam learning rate :func:`pretrain_uniform` uses unless told otherwise.
    pretrain_lr: float = 1e-3

    def __init__(
        self,
        num_objectives: int,
        num_edges: int,
        num_ops: int,
        embedding_dim: int,
        option_mask: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__()
        self.num_objectives = _positive_int(num_objectives, "number of objectives")
        self.num_edges = _positive_int(num_edges, "number of edges")
        self.num_ops = _positive_int(num_ops, "number of ops", minimum=2)
        self.embedding_dim = _positive_int(embedding_dim, "device embedding width")
        #: flat positions of the real options in a (num_edges * num_ops) row, or None when every cell is real
        self.output_index: Tensor | None = None
        if option_mask is not None:
            mask = torch.as_tensor(np.asarray(option_mask), dtype=torch.bool)
            if tuple(mask.shape) != (self.num_edges, self.num_ops):
                raise ModnasError(
                    f"option mask has shape {tuple(mask.shape)}, expected ({self.num_edges}, {self.num_ops})"
                )
            if not bool(mask.any(dim=1).all()):
                raise ModnasError("option mask leaves a decision without options")
            if not bool(mask.all()):
                self.output_index = mask.flatten().nonzero().flatten()

    @property
    def num_outputs(self) -> int:
        """Values the network learns per input: the real options (all cells of a dense space)."""
        if self.output_index is None:
            return self.num_edges * self.num_ops
        return int(self.output_index.numel())

    def _logits(self, preference: Tensor, embedding: Tensor) -> Tensor:
        """(N, M), (N, d) -> (N, num_outputs)."""
        raise NotImplementedError

    def _as_tensor(self, value: TensorLike, what: str) -> Tensor:
        ref = next(self.parameters())
        try:
            tensor = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
        except (TypeError, ValueError, RuntimeError):
            raise ModnasError(f"{what} is not a numeric array: {value!r}") from None
        return tensor

    def forward(self, preference: TensorLike, device_embedding: TensorLike) -> Tensor:
        """Logits of shape (*batch, num_edges, num_ops); batch = broadcast of the two inputs' leading dims."""
        r = self._as_tensor(preference, "preference")
        h = self._as_tensor(device_embedding, "device embedding")
        if r.dim() == 0 or r.shape[-1] != self.num_objectives:
            raise ModnasError(
                f"preference has shape {tuple(r.shape)}, expected (..., {self.num_objectives}) "
                f"(one entry per objective)"
            )
        if h.dim() == 0 or h.shape[-1] != self.embedding_dim:
            raise ModnasError(
                f"device embedding has shape {tuple(h.shape)}, expected (..., {self.embedding_dim})"
            )
        try:
            batch = torch.broadcast_shapes(r.shape[:-1], h.shape[:-1])
        except RuntimeError:
            raise ModnasError(
                f"preference of shape {tuple(r.shape)} and device embedding of shape {tuple(h.shape)} "
                f"have incompatible batch dimensions"
            ) from None
        if not bool(torch.isfinite(r).all()) or not bool(torch.isfinite(h).all()):
            raise ModnasError("preference and device embedding must not contain NaN or inf")
        r = r.expand(*batch, self.num_objectives).reshape(-1, self.num_objectives)
        h = h.expand(*batch, self.embedding_dim).reshape(-1, self.embedding_dim)
        logits = self._logits(r, h)
        if self.output_index is not None:  # zeros in the padding; the backward is a gather, hence deterministic
            full = logits.new_zeros(logits.shape[0], self.num_edges * self.num_ops)
            full[:, self.output_index.to(logits.device)] = logits
            logits = full
        return logits.reshape(*batch, self.num_edges, self.num_ops)

    def pretrain_uniform(
        self,
        device_embeddings: TensorLike,
        steps: int = 200,
        seed: int = 0,
        batch_size: int = 256,
        lr: float | None = None,
        target_std: float = 1e-3,
    ) -> float:
        """Train towards near-zero logits for every (preference, device); see :func:`pretrain_uniform`."""
        return pretrain_uniform(
            self,
            device_embeddings,
            steps=steps,
            seed=seed,
            batch_size=batch_size,
            lr=lr,
            target_std=target_std,
        )


class MetaHyperNetwork(HyperNetwork):
    """MODNAS' MetaHyperNetwork (the official code's ``hpn_nb201.py``): 50 prototypes x 101-bin lookup tables.

    ``alpha(r, h) = sum_k pi_k T_k[round((num_bins - 1) r_0)]`` with ``pi = softmax(sin(E h / sqrt(d)))``.

    The K tables (``nn.Embedding(num_bins, num_edges * num_ops)`` each in the original) are held as one
    (K, num_bins, num_edges * num_ops) parameter: the same numbers and init (N(0, 1)), but one batched gather per
    forward and one optimiser tensor instead of K. :meth:`load_official_state_dict` reads the original layout.
    """

    # the N(0, 1) tables must cancel out in the mixture and a row only learns when its bin is drawn, so pretraining
    # needs larger steps than for the MLP (which starts near 0 anyway)
    pretrain_lr = 3e-2

    def __init__(
        self,
        num_objectives: int = 2,
        num_edges: int = 6,
        num_ops: int = 5,
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        num_prototypes: int = 50,
        num_bins: int = 101,
        option_mask: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__(num_objectives, num_edges, num_ops, embedding_dim, option_mask)
        self.num_prototypes = _positive_int(num_prototypes, "number of prototypes")
        self.num_bins = _positive_int(num_bins, "number of preference bins", minimum=2)
        self.prototypes = nn.Embedding(self.num_prototypes, self.embedding_dim)  # E, N(0, 1) init
        self.tables = nn.Parameter(torch.randn(self.num_prototypes, self.num_bins, self.num_outputs))

    def bins(self, preference: Tensor) -> Tensor:
        """Table row per preference (..., M) -> (...): ``round((num_bins - 1) r_0)`` clamped into range.

        ``torch.round`` rounds halves to even, like the original; the clamp makes r_0 = 1 (or slightly outside
        [0, 1], e.g. a circle ray) a valid row instead of an IndexError.
        """
        scaled = torch.round(preference[..., 0] * (self.num_bins - 1))
        return scaled.clamp(0, self.num_bins - 1).long()

    def mixture_weights(self, embedding: Tensor) -> Tensor:
        """(N, d) -> (N, K): the sin-softmax similarity to the K learned prototypes."""
        similarity = embedding @ self.prototypes.weight.T / math.sqrt(self.embedding_dim)
        return torch.sin(similarity).softmax(dim=-1)

    def _logits(self, preference: Tensor, embedding: Tensor) -> Tensor:
        weights = self.mixture_weights(embedding)  # (N, K)
        # sum_k w_k T_k[bin] as one matmul with a (prototype x bin) one-hot mixture: an indexing gather would be
        # cheaper, but its backward (index_add) is not deterministic with several CPU threads, and resumed runs
        # must repeat uninterrupted ones exactly
        onehot = nn.functional.one_hot(self.bins(preference), self.num_bins).to(weights.dtype)  # (N, B)
        mix = (weights[:, :, None] * onehot[:, None, :]).flatten(1)  # (N, K * B)
        return mix @ self.tables.flatten(0, 1)

    def load_official_state_dict(self, state_dict: Mapping[str, Tensor], reverse_ops: bool = True) -> None:
        """Load a checkpoint of the original ``MetaHyperNetwork`` (keys ``hardware_embedding.weight`` and
        ``hpn_factory.<k>.embedding.weight``).

        Its op columns are ``[avg_pool_3x3, nor_conv_3x3, nor_conv_1x1, skip_connect, none]``, the reverse of
        modnas' order, so by default every table row is flipped per edge.
        """
        if self.output_index is not None:
            raise ModnasError("official MetaHyperNetwork checkpoints are for NB201's dense space, not a masked one")
        expected = (tuple(self.prototypes.weight.shape), tuple(self.tables.shape[1:]))
        try:
            prototypes = torch.as_tensor(state_dict["hardware_embedding.weight"])
            rows = [
                torch.as_tensor(state_dict[f"hpn_factory.{k}.embedding.weight"])
                for k in range(self.num_prototypes)
            ]
        except KeyError as err:
            raise ModnasError(f"checkpoint does not fit this MetaHyperNetwork: missing key {err}") from None
        found = {tuple(prototypes.shape)} | {tuple(r.shape) for r in rows}
        if tuple(prototypes.shape) != expected[0] or any(tuple(r.shape) != expected[1] for r in rows):
            raise ModnasError(
                f"checkpoint does not fit this MetaHyperNetwork: found shapes {sorted(found)}, expected prototypes "
                f"{expected[0]} and {self.num_prototypes} tables of {expected[1]}"
            )
        tables = torch.stack(rows)
        if reverse_ops:
            shape = tables.shape
            tables = tables.reshape(*shape[:2], self.num_edges, self.num_ops).flip(-1).reshape(shape)
        with torch.no_grad():
            self.prototypes.weight.copy_(prototypes)
            self.tables.copy_(tables)


class PreferenceMLPHyperNetwork(HyperNetwork):
    """A continuous hypernetwork: an MLP on ``concat(r, h)`` that uses every preference component.

    The last layer starts at ``init_std`` (bias 0), so the initial logits are ~0 (uniform op probabilities), the
    same starting point MODNAS reaches for its lookup tables by pretraining.
    """

    def __init__(
        self,
        num_objectives: int = 2,
        num_edges: int = 6,
        num_ops: int = 5,
        embedding_dim: int = DEFAULT_EMBEDDING_DIM,
        hidden: int = 128,
        num_hidden_layers: int = 2,
        init_std: float = 1e-4,
        option_mask: np.ndarray | Tensor | None = None,
    ) -> None:
        super().__init__(num_objectives, num_edges, num_ops, embedding_dim, option_mask)
        hidden = _positive_int(hidden, "hidden width")
        depth = _positive_int(num_hidden_layers, "number of hidden layers")
        if not (math.isfinite(init_std) and init_std >= 0):
            raise ModnasError(f"init_std must be a non-negative number, got {init_std!r}")
        layers: list[nn.Module] = []
        width = self.num_objectives + self.embedding_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.num_outputs)
        nn.init.normal_(self.head.weight, std=init_std)
        nn.init.zeros_(self.head.bias)

    def _logits(self, preference: Tensor, embedding: Tensor) -> Tensor:
        return self.head(self.body(torch.cat([preference, embedding], dim=-1)))


HYPERNETS: dict[str, type[HyperNetwork]] = {"meta": MetaHyperNetwork, "mlp": PreferenceMLPHyperNetwork}


def make_hypernet(
    name: str, num_objectives: int, num_edges: int = 6, num_ops: int = 5, **kwargs: Any
) -> HyperNetwork:
    """Build a hypernetwork by name (``meta`` or ``mlp``); other keyword arguments go to its constructor."""
    key = str(name).strip().lower()
    if key not in HYPERNETS:
        raise ModnasError(f"unknown hypernetwork {name!r}; choose one of: {', '.join(HYPERNETS)}")
    try:
        return HYPERNETS[key](num_objectives=num_objectives, num_edges=num_edges, num_ops=num_ops, **kwargs)
    except TypeError as err:  # a misspelt option
        raise ModnasError(f"bad option for hypernetwork {key!r}: {err}") from None


def pretrain_uniform(
    hypernet: HyperNetwork,
    device_embeddings: TensorLike,
    steps: int = 200,
    seed: int = 0,
    batch_size: int = 256,
    lr: float | None = None,
    target_std: float = 1e-3,
) -> float:
    """Fit ``hypernet`` to tiny random logits, so that every (preference, device) starts near uniform op weights.

    MODNAS' recipe with the same loss and data: MSE to a fresh ``target_std * N(0, 1)`` target,
    r ~ Dirichlet(1, ..., 1), h drawn uniformly from ``device_embeddings`` (n, d). The original takes 100k Adam
    steps at batch 1 and lr 1e-3; batches of ``batch_size`` with a cosine-decayed lr (default: the network's
    ``pretrain_lr``) get there in about a second on a CPU. Uses its own seeded generator, so the global RNG is
    untouched. Returns the last loss.
    """
    steps = _positive_int(steps, "pretraining steps")
    lr = hypernet.pretrain_lr if lr is None else lr
    batch_size = _positive_int(batch_size, "pretraining batch size")
    if not (math.isfinite(lr) and lr > 0):
        raise ModnasError(f"pretraining lr must be a positive number, got {lr!r}")
    embeddings = hypernet._as_tensor(device_embeddings, "device embeddings").detach()
    if embeddings.dim() != 2 or embeddings.shape[0] == 0 or embeddings.shape[1] != hypernet.embedding_dim:
        raise ModnasError(
            f"device embeddings have shape {tuple(embeddings.shape)}, expected (n_devices >= 1, "
            f"{hypernet.embedding_dim})"
        )
    ref = embeddings
    gen = torch.Generator().manual_seed(int(seed))  # CPU draws, then moved: identical on every device
    optimiser = torch.optim.Adam(hypernet.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps, eta_min=lr * 0.01)
    m, shape = hypernet.num_objectives, (hypernet.num_edges, hypernet.num_ops)
    loss = torch.zeros(())
    for _ in range(steps):
        # Dirichlet(1, ..., 1) is uniform on the simplex: normalised Exp(1) draws (this takes a generator)
        exp = torch.empty(batch_size, m).exponential_(generator=gen)
        r = (exp / exp.sum(dim=-1, keepdim=True)).to(ref)
        h = embeddings[torch.randint(embeddings.shape[0], (batch_size,), generator=gen).to(ref.device)]
        target = (target_std * torch.randn(batch_size, *shape, generator=gen)).to(ref)
        output = hypernet(r, h)
        if hypernet.output_index is not None:  # the padding is constant: fit the real options only
            index = hypernet.output_index.to(ref.device)
            output, target = output.flatten(1)[:, index], target.flatten(1)[:, index]
        loss = F.mse_loss(output, target)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    optimiser.zero_grad(set_to_none=True)
    return float(loss.detach())
