"""Run directories: what one search writes, and reading results back.

A run directory holds

* ``config.yaml`` -- the resolved :class:`~modnas.config.SearchConfig`;
* ``metrics.csv`` -- ``epoch, device, split, hv, igd_plus, n_front`` for all 19 devices after every epoch;
* ``fronts.csv`` -- ``epoch, device, ray, preference, arch_str``: the architecture chosen for every evaluation ray;
* ``queries.csv`` -- ``order, arch_str, error``: every architecture whose true accuracy was read, in order;
* ``checkpoints/last.pt`` -- hypernetwork, optimiser, error predictor, query budget, RNG states and epoch;
* ``summary.json`` -- the last epoch's rows and means, the number of queries used and the wall time.

Every file is rewritten atomically after each epoch, so an interrupted run leaves complete files behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from modnas.config import SearchConfig
from modnas.errors import ModnasError
from modnas.io import atomic_torch_save, atomic_write_json, atomic_write_text, read_csv_rows
from modnas.spaces.nb201.encoding import index_to_string

METRIC_FIELDS = ("epoch", "device", "split", "hv", "igd_plus", "n_front")
FRONT_FIELDS = ("epoch", "device", "ray", "preference", "arch_str")
QUERY_FIELDS = ("order", "arch_str", "error")
ROW_FIELDS = ("device", "split", "hv", "igd_plus", "n_front")

#: ``progress(steps_done, steps_total, last_mean_hv_or_None)``
Progress = Callable[[int, int, "float | None"], None]


def _csv_text(fields: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    return buffer.getvalue()


def prepare_run_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (or accept an empty one); refuse anything that already holds files."""
    path = Path(out_dir)
    if path.exists():
        if not path.is_dir():
            raise ModnasError(f"output path {str(path)!r} exists and is not a directory")
        if any(path.iterdir()):
            raise ModnasError(f"output directory {str(path)!r} is not empty; choose a new --out")
    path.mkdir(parents=True, exist_ok=True)
    (path / "checkpoints").mkdir(exist_ok=True)
    return path


def _plain(obj: Any) -> Any:
    """Numpy scalars and arrays -> Python numbers and tensors, so the checkpoint loads with ``weights_only=True``."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_torch_save(_plain(state), path)


def summarise(rows: list[dict[str, Any]], queries: int, seconds: float, epoch: int) -> dict[str, Any]:
    """The summary of one epoch's rows: per-device rows, mean HV over all and over the test devices."""
    test = [r["hv"] for r in rows if r["split"] == "test"]
    return {
        "epoch": epoch,
        "devices": [{k: r[k] for k in ROW_FIELDS} for r in rows],
        "mean_hv": sum(r["hv"] for r in rows) / len(rows),
        "mean_hv_test": sum(test) / len(test) if test else None,
        "queries": queries,
        "seconds": round(seconds, 2),
    }


def search(config: SearchConfig, out_dir: str | Path, progress: Progress | None = None) -> dict[str, Any]:
    """Run one search into a new run directory and return its summary (also written to ``summary.json``)."""
    from modnas.search.benchmark import BenchmarkSearch

    if config.mode != "benchmark":  # pragma: no cover - the config only admits benchmark for now
        raise ModnasError(f"search mode {config.mode!r} is not implemented")
    run_dir = prepare_run_dir(out_dir)
    atomic_write_text(run_dir / "config.yaml", config.to_yaml())
    start = time.perf_counter()
    loop = BenchmarkSearch(config)
    total = config.epochs * config.steps_per_epoch
    done = 0
    last_hv: float | None = None
    metrics: list[dict[str, Any]] = []
    fronts: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, last_hv)

    for _ in range(config.epochs):
        result = loop.run_epoch(tick)
        metrics += [{"epoch": result.epoch, **row} for row in result.rows]
        fronts += [{"epoch": result.epoch, **row} for row in result.fronts]
        last_hv = result.mean_hv
        queries = [
            {"order": k, "arch_str": index_to_string(i), "error": e}
            for k, (i, e) in enumerate(zip(loop.budget.queried, loop.budget.errors), start=1)
        ]
        # the checkpoint first: the CSVs and the summary then never describe an epoch it does not hold
        _save_checkpoint(run_dir / "checkpoints" / "last.pt", loop.state_dict())
        atomic_write_text(run_dir / "metrics.csv", _csv_text(METRIC_FIELDS, metrics))
        atomic_write_text(run_dir / "fronts.csv", _csv_text(FRONT_FIELDS, fronts))
        atomic_write_text(run_dir / "queries.csv", _csv_text(QUERY_FIELDS, queries))
        if progress is not None:
            progress(done, total, last_hv)
    summary = summarise(result.rows, loop.budget.used, time.perf_counter() - start, result.epoch)
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def _float_or_none(text: str, what: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ModnasError(f"{what}: {text!r} is not a number") from None
    return None if math.isnan(value) else value


def evaluate_run(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-device rows of a run: ``summary.json``'s, or the last complete epoch of ``metrics.csv``."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ModnasError(f"run directory {str(path)!r} does not exist")
    summary = path / "summary.json"
    if summary.is_file():
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            rows = data["devices"]
            if not isinstance(rows, list) or not rows:
                raise ValueError
            return [{k: row[k] for k in ROW_FIELDS} for row in rows]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise ModnasError(f"{str(summary)!r} is damaged: it does not hold a 'devices' list of rows") from None
    metrics = path / "metrics.csv"
    if not metrics.is_file():
        raise ModnasError(f"{str(path)!r} holds neither summary.json nor metrics.csv: not a run, or no epoch finished")
    return _last_complete_epoch(metrics, path)


def _last_complete_epoch(metrics: Path, run_dir: Path) -> list[dict[str, Any]]:
    from modnas.hardware.devices import PROTOCOL_DEVICES

    reader = read_csv_rows(metrics, METRIC_FIELDS)
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for line_no, raw in enumerate(reader, start=2):
        if any(raw.get(f) is None for f in METRIC_FIELDS):
            continue  # a cut-off last line
        try:
            epoch = int(raw["epoch"])
            hv = _float_or_none(raw["hv"], f"{metrics} line {line_no}")
            n_front = int(raw["n_front"])
        except (ValueError, ModnasError):
            continue
        if hv is None:
            continue
        row = {
            "device": raw["device"],
            "split": raw["split"],
            "hv": hv,
            "igd_plus": _float_or_none(raw["igd_plus"], f"{metrics} line {line_no}"),
            "n_front": n_front,
        }
        by_epoch.setdefault(epoch, []).append(row)
    expected = set(PROTOCOL_DEVICES)
    complete = [e for e, rows in by_epoch.items() if {r["device"] for r in rows} >= expected]
    if not complete:
        raise ModnasError(f"{str(run_dir)!r} is truncated: metrics.csv holds no complete epoch")
    rows = by_epoch[max(complete)]
    seen: set[str] = set()
    ordered = []
    for row in rows:  # one row per device, in the order written
        if row["device"] not in seen:
            seen.add(row["device"])
            ordered.append(row)
    return ordered
