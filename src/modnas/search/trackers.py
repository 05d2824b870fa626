"""Following a search while it runs: the epoch-end callback's argument, its one-line summary, and trackers.

``search(config, out_dir, callbacks=[fn])`` calls every ``fn(info)`` after each epoch, once that epoch's files are
written; ``info`` is an :class:`EpochInfo`. A tracker is such a callable. :class:`TensorBoardTracker` writes
TensorBoard scalars (``pip install 'modnas[tracking]'``); any other tracker is a few lines, e.g. MLflow::

    import mlflow

    def to_mlflow(info):
        mlflow.log_metrics({"mean_hv": info.mean_hv, "queries": info.queries,
                            **{f"mean_hv_{s}": v for s, v in info.mean_hv_by_split.items()}}, step=info.epoch)

    search(config, "runs/x", callbacks=[to_mlflow])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modnas.errors import ModnasError


@dataclass(frozen=True)
class EpochInfo:
    """What one finished epoch of a search reports."""

    epoch: int
    epochs: int
    rows: list[dict[str, Any]]  # one per evaluation device: device, split, hv, igd_plus, n_front
    fronts: list[dict[str, Any]]  # one per (device, ray): the architecture chosen
    queries: int  # distinct architectures whose true accuracy the search has read (benchmark mode)
    seconds: float  # search time so far, over all resumptions
    run_dir: Path
    extra: dict[str, float] = field(default_factory=dict)  # the loop's own numbers (losses), when it reports any

    @property
    def mean_hv(self) -> float:
        """Mean hypervolume over all evaluation devices."""
        return sum(r["hv"] for r in self.rows) / len(self.rows)

    @property
    def mean_hv_by_split(self) -> dict[str, float]:
        """Mean hypervolume per device split (train, test, ...), in the order the splits first appear."""
        values: dict[str, list[float]] = {}
        for r in self.rows:
            values.setdefault(r["split"], []).append(r["hv"])
        return {split: sum(v) / len(v) for split, v in values.items()}

    def line(self) -> str:
        """One plain line: epoch, mean HV (all and per split), queries used, time."""
        splits = ", ".join(f"{s} {v:.4f}" for s, v in self.mean_hv_by_split.items())
        return (
            f"epoch {self.epoch}/{self.epochs}: mean HV {self.mean_hv:.4f} ({splits}); "
            f"{self.queries} queries; {self.seconds:.1f} s"
        )


#: ``callback(info)``, called after every epoch
EpochCallback = Callable[[EpochInfo], None]


class TensorBoardTracker:
    """Writes each epoch's HV (mean, per split, per device), queries and extras as TensorBoard scalars.

    The writer is created at the first epoch, inside the run directory by default (``<run>/tensorboard``), so a
    new run directory is still empty when the search checks it. Without the ``tensorboard`` package the
    constructor is a one-line error.
    """

    def __init__(self, log_dir: str | Path | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ModnasError(
                "TensorBoard logging needs the tensorboard package: pip install 'modnas[tracking]'"
            ) from None
        self._writer_class = SummaryWriter
        self.log_dir = None if log_dir is None else Path(log_dir)
        self._writer: Any = None

    def __call__(self, info: EpochInfo) -> None:
        if self._writer is None:
            self.log_dir = self.log_dir or info.run_dir / "tensorboard"
            self._writer = self._writer_class(log_dir=str(self.log_dir))
        write = self._writer.add_scalar
        write("hv/mean", info.mean_hv, info.epoch)
        for split, value in info.mean_hv_by_split.items():
            write(f"hv/mean_{split}", value, info.epoch)
        for row in info.rows:
            write(f"hv_device/{row['device']}", row["hv"], info.epoch)
        write("search/queries", info.queries, info.epoch)
        write("search/seconds", info.seconds, info.epoch)
        for key, value in info.extra.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                write(f"loop/{key}", value, info.epoch)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file (nothing to do if no epoch finished)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


__all__ = ["EpochCallback", "EpochInfo", "TensorBoardTracker"]
