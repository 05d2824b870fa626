"""One search across several processes, launched by ``torchrun`` (or any launcher that sets torch.distributed's
environment variables).

A one-shot step has two phases, and each is split the way that keeps its result that of one process:

* **Hypernetwork phase, device parallel.** Every rank draws the same preferences and samples (the random streams
  are replicated), evaluates the supernet only for the training devices it owns (:meth:`Ranks.owned`) and computes
  only their hypernetwork gradients. The per-device values and gradient rows are summed across ranks into tensors
  where every other rank contributed zeros, so each rank ends up with exactly the single-process numbers and solves
  the same min-norm problem deterministically: the replicas take identical steps.
* **Weight phase**, split one of two ways (``oneshot.weight_split``), the gradients summed by one explicit
  all-reduce:

  - ``batch`` (data parallel): the global batch is cut into contiguous shards in the single-process order
    (:meth:`Ranks.shard`); every rank runs all devices' samples on its shard, each loss summed over the shard and
    divided by the *global* batch size, and batch normalisation takes its statistics over the global batch
    (:class:`GlobalBatchNorm2d`). The batch per rank shrinks with the ranks, so this is the split for large
    batches and for more ranks than training devices; it costs one small all-reduce per normalisation layer and
    pass, cheap with NCCL, about a millisecond each with gloo on a CPU.
  - ``devices``: every rank runs its own training devices' samples on the whole batch. Three all-reduces per step, so
    this is the fast split on CPUs; each rank holds the whole batch.

  Either way the gradient is the single-process one up to the order of floating-point additions. ``auto`` takes
  ``batch`` on CUDA or with more ranks than training devices, else ``devices``.

Why an explicit all-reduce and not ``DistributedDataParallel``: one weight step runs one forward and backward pass
per training device, each through a different single path of the supernet, so most parameters are unused by any
one pass; DDP would need ``find_unused_parameters`` and ``no_sync`` over T passes to sum what one all-reduce of the
flat gradient sums after them. Why not ``torch.nn.SyncBatchNorm``: it refuses CPU tensors (no gloo runs, no tests)
and synchronises in every training-mode forward, while in the hypernetwork phase the ranks run different
architectures on the same full batch and must not synchronise.

Nothing here changes a single-process run: :data:`SINGLE` owns every device and the whole batch, and its
collectives are no-ops.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError

__all__ = [
    "SINGLE",
    "FromMain",
    "GlobalBatchNorm2d",
    "Ranks",
    "elastic_restart",
    "launched_world_size",
    "setup",
    "teardown",
    "to_global_batchnorm",
    "use_global_batchnorm",
]


def _sum_in_place(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks, in place; a failed collective is one line (:func:`_collective`)."""
    with _collective():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@contextlib.contextmanager
def _collective() -> Iterator[None]:
    """A failed collective (a peer died, was killed or hung up) as one line naming what to do."""
    try:
        yield
    except RuntimeError as exc:
        rank = dist.get_rank() if dist.is_initialized() else "?"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0]  # gloo prefixes its source location
        raise ModnasError(
            f"rank {rank} lost contact with the other ranks ({first[:160]}): another rank failed or was stopped, see "
            f"its message; with torchrun --max-restarts and --out the run resumes from its last checkpoint"
        ) from None


def _block(count: int, parts: int, index: int) -> range:
    """Block ``index`` of ``count`` items cut into ``parts`` contiguous blocks (the first ones one longer)."""
    base, extra = divmod(count, parts)
    start = index * base + min(index, extra)
    return range(start, start + base + (index < extra))


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in the run: its rank among ``world_size`` processes and how the work is split."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process takes part (the collectives are real)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reads and writes the run directory and reports."""
        return self.rank == 0

    def owned(self, count: int) -> range:
        """The training devices (indices ``0..count-1``) whose hypernetwork work this rank does."""
        return _block(count, self.world_size, self.rank)

    def shard(self, count: int) -> slice:
        """This rank's contiguous part of a batch of ``count`` items, in the single-process order."""
        block = _block(count, self.world_size, self.rank)
        return slice(block.start, block.stop)

    def sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over the ranks, in place (unchanged in a single process)."""
        return _sum_in_place(tensor) if self.active else tensor

    def sum_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Sum the gradients of ``params`` over the ranks with one all-reduce of their concatenation.

        A parameter that has a gradient on some rank gets one (zeros) on every rank first; one without a gradient
        anywhere keeps none, so that an optimiser skips it (rather than decays it) as in one process.
        """
        if not self.active:
            return
        has = _sum_in_place(torch.tensor([p.grad is not None for p in params], dtype=torch.float32))
        with_grad = [p for p, h in zip(params, has.tolist()) if h > 0]
        for p in with_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if not with_grad:
            return
        flat = _sum_in_place(torch.cat([p.grad.reshape(-1) for p in with_grad]))  # type: ignore[union-attr]
        offset = 0
        for p in with_grad:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
            offset += n

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; for checkpoints, decisions and summaries, not per step)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        with _collective():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def check_replicas(self, tensors: dict[str, Tensor], epoch: int) -> None:
        """Raise on every rank if any of the named ``tensors`` differs between the ranks (a cheap float64 checksum
        per tensor, once per epoch).

        Every rank takes identical steps from identical summed gradients, so the replicas must agree bit for bit; a
        difference means some computation was not replicated (a random draw on one rank only, a nondeterministic
        kernel feeding a replicated decision).
        """
        if not self.active:
            return
        names = list(tensors)
        sums = []
        for name in names:
            flat = tensors[name].detach().reshape(-1).to("cpu", torch.float64)
            weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64).remainder_(7).add_(1)
            sums.append(torch.stack([flat.sum(), (flat * flat).sum(), (flat * weights).sum()]))
        mine = torch.stack(sums) if sums else torch.zeros(0, 3, dtype=torch.float64)
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        with _collective():
            dist.all_gather(everyone, mine)
        ranks = [r for r, theirs in enumerate(everyone) if not torch.equal(theirs, everyone[0])]
        if ranks:
            differ = [
                n for i, n in enumerate(names) if any(not torch.equal(everyone[r][i], everyone[0][i]) for r in ranks)
            ]
            shown = ", ".join(differ[:3]) + (f" and {len(differ) - 3} more" if len(differ) > 3 else "")
            raise ModnasError(
                f"the replicas diverged after epoch {epoch}: {shown or 'the search state'} differ between rank 0 and "
                f"rank(s) {', '.join(map(str, ranks))}, so the run stops (every random draw and decision must be the "
                f"same on all ranks)"
            )


class FromMain:
    """Rank 0 sends one value to the other ranks, or the error that kept it from producing one (each at most once).

    Rank 0 calls :meth:`send` (or :meth:`fail` from its error handler); every other rank calls :meth:`receive`,
    which returns the value or stops that rank with one line naming rank 0's error. In one process it does nothing.
    """

    def __init__(self, ranks: Ranks, what: str) -> None:
        self.ranks, self.what, self.sent = ranks, what, False

    def send(self, value: Any) -> None:
        if self.ranks.active and not self.sent:
            self.ranks.broadcast(("value", value))
        self.sent = True

    def fail(self, exc: BaseException) -> None:
        if self.ranks.active and not self.sent:
            self.ranks.broadcast(("error", str(exc) or type(exc).__name__))
        self.sent = True

    def receive(self) -> Any:
        kind, value = self.ranks.broadcast(None)
        if kind == "error":
            raise ModnasError(f"rank {self.ranks.rank} stops: rank 0 could not {self.what} ({value})")
        return value


#: A run in one process: every device, the whole batch, no collectives.
SINGLE = Ranks()


def launched_world_size() -> int:
    """``$WORLD_SIZE`` as a launcher (torchrun) sets it; 1 when it is unset."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return max(1, int(text))
    except ValueError:
        raise ModnasError(f"WORLD_SIZE={text!r} in the environment is not a whole number") from None


def elastic_restart() -> int:
    """How often torchrun has restarted this worker group (``$TORCHELASTIC_RESTART_COUNT``; 0 without torchrun)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


#: whether :func:`setup` created the process group (then :func:`teardown` destroys it; a caller's group is theirs)
_CREATED = False


def setup(device: str = "auto", timeout_minutes: float = 30.0) -> Ranks:
    """This process's :class:`Ranks`, joining the process group when a launcher started several processes.

    Backend by hardware: NCCL for CUDA tensors, with gloo for the CPU tensors of the hypernetwork
    (``cpu:gloo,cuda:nccl``) when CUDA is used, plain gloo on the CPU. A process group the caller initialised already
    is used as it is. ``device`` is the one-shot setting (``auto``, ``cpu`` or ``cuda``).
    """
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world = launched_world_size()
    if world == 1:
        return SINGLE
    if not dist.is_available():  # pragma: no cover - every supported build has torch.distributed
        raise ModnasError("this PyTorch build has no torch.distributed; run in one process")
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ModnasError(
            f"WORLD_SIZE={world} but {', '.join(missing)} is not set: launch with torchrun (see the README, 'Several "
            f"GPUs or machines')"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if not torch.cuda.is_available():
            raise ModnasError("oneshot.device is 'cuda' but no CUDA GPU is available to this process")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    timeout = timedelta(minutes=timeout_minutes)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # torchrun's agent hosts the store. Its env:// rendezvous gives a restarted worker group the store of the
        # failed attempt without a per-attempt prefix (torch 2.13), so restarted gloo workers read the dead
        # workers' addresses and hang; a prefix per attempt keeps the attempts apart.
        base = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False, timeout=timeout
        )
        store = dist.PrefixStore(f"modnas/attempt_{elastic_restart()}", base)
        rank = int(os.environ["RANK"])
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world, timeout=timeout)
    else:
        dist.init_process_group(backend=backend, timeout=timeout)
    global _CREATED
    _CREATED = True
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank)


def teardown() -> None:
    """Leave the process group if :func:`setup` created it."""
    global _CREATED
    if _CREATED and dist.is_initialized():
        dist.destroy_process_group()
    _CREATED = False


# -- batch normalisation over the global batch -----------------------------------------------------------------------


class _SumOverRanks(torch.autograd.Function):
    """Sum over the ranks whose backward pass sums the gradients over the ranks (each rank's loss reads the sum)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return _sum_in_place(tensor.clone())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return _sum_in_place(grad.clone())


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` for a supernet whose batch is spread over the ranks.

    While :func:`use_global_batchnorm` is active (the weight phase) its training-mode statistics are those of the
    whole batch, and the running statistics follow them, identically on every rank. The statistics come from one
    differentiable all-reduce of the per-channel sums of ``x`` and ``x^2`` (float64, so the one-pass variance loses
    nothing that matters) and the element count; the backward pass all-reduces their gradients.

    Otherwise (the hypernetwork phase, where each rank runs only its own devices' samples) it normalises with the
    local batch's statistics and leaves the running statistics alone, so that they stay the same on every rank; the
    one-shot search never reads them (its supernet always normalises with batch statistics). In evaluation mode it
    is ``nn.BatchNorm2d``. The state dict is that of ``nn.BatchNorm2d``.
    """

    global_stats: bool = False

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]  # an elastic supernet normalises the leading channels only
        weight = self.weight[:c] if self.affine else None
        bias = self.bias[:c] if self.affine else None
        if not (self.global_stats and self.training and dist.is_initialized()):
            # local statistics, the running ones untouched (training); the running ones (evaluation)
            running = not self.training and self.track_running_stats
            return F.batch_norm(
                x, self.running_mean[:c] if running else None,  # type: ignore[index]
                self.running_var[:c] if running else None, weight, bias,  # type: ignore[index]
                not running, 0.0, self.eps,
            )
        xf = x.float()
        count = torch.tensor([xf.numel() / c], dtype=torch.float64, device=x.device)
        sums = torch.cat([xf.sum(dim=(0, 2, 3), dtype=torch.float64),
                          (xf * xf).sum(dim=(0, 2, 3), dtype=torch.float64), count])
        sums = _SumOverRanks.apply(sums)
        n = sums[-1]
        mean = sums[:c] / n
        var = (sums[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[union-attr,operator]
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean[:c].mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                unbiased = var * n / (n - 1).clamp_min(1.0)
                self.running_var[:c].mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = (1, c, 1, 1)
        y = (xf - mean.float().view(shape)) * torch.rsqrt(var.float() + self.eps).view(shape)
        if weight is not None and bias is not None:
            y = y * weight.view(shape) + bias.view(shape)
        return y.to(x.dtype)


def to_global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` (or subclass, such as an elastic supernet's) inside ``module`` by a
    :class:`GlobalBatchNorm2d` with the same settings, parameters and buffers (in place, before the module moves to
    its device; returns ``module``). A layer fed fewer channels than it has normalises its leading ones."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            swapped = GlobalBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            swapped.load_state_dict(child.state_dict())
            swapped.train(child.training)
            setattr(module, name, swapped)
        else:
            to_global_batchnorm(child)
    return module


@contextlib.contextmanager
def use_global_batchnorm(module: nn.Module, active: bool = True) -> Iterator[None]:
    """Inside the block the :class:`GlobalBatchNorm2d` layers of ``module`` use global-batch statistics."""
    layers = [m for m in module.modules() if isinstance(m, GlobalBatchNorm2d)] if active else []
    for layer in layers:
        layer.global_stats = True
    try:
        yield
    finally:
        for layer in layers:
            layer.global_stats = False
