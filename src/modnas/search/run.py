"""Run directories: what one search writes, and reading results back.

A run directory holds

* ``config.yaml`` -- the resolved :class:`~modnas.config.SearchConfig`;
* ``metrics.csv`` -- ``epoch, device, split, hv, igd_plus, n_front, queries`` for every evaluation device after
  every epoch (``queries``: distinct architectures whose true accuracy the search had read by then);
* ``fronts.csv`` -- ``epoch, device, ray, preference, arch_str``: the architecture chosen for every evaluation ray;
* ``queries.csv`` -- ``order, arch_str, error``: every architecture whose true accuracy was read, in order;
* ``checkpoints/last.pt`` -- hypernetwork, optimiser, error predictor, query budget, RNG states and epoch;
* ``summary.json`` -- the last epoch's rows and means, the number of queries used and the wall time;
* ``metadata.json`` -- modnas version and git commit, command line, start/end times, host, library versions, seed
  (see :mod:`modnas.search.metadata`);
* ``.modnas.lock`` -- locked by the process writing the run, so a second one (``--resume`` twice) is refused.

Every file is rewritten atomically after each epoch (the checkpoint first), so a run killed at any moment leaves
complete files behind, and ``search(..., resume=True)`` continues it from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modnas.config import SearchConfig, make_config, upgrade_config_data
from modnas.errors import Interrupted, ModnasError, OutputError
from modnas.io import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    csv_text,
    os_error_reason,
    prepare_out_dir,
    read_csv_rows,
    read_yaml_mapping,
)
from modnas.search.metadata import RunMetadata
from modnas.search.trackers import EpochCallback, EpochInfo

logger = logging.getLogger(__name__)

METRIC_FIELDS = ("epoch", "device", "split", "hv", "igd_plus", "n_front", "queries")
FRONT_FIELDS = ("epoch", "device", "ray", "preference", "arch_str")
QUERY_FIELDS = ("order", "arch_str", "error")
ROW_FIELDS = ("device", "split", "hv", "igd_plus", "n_front")

#: ``progress(steps_done, steps_total, last_mean_hv_or_None)``
Progress = Callable[[int, int, "float | None"], None]


#: The lock a search holds on its run directory, so that two processes never write one run at once.
LOCK_NAME = ".modnas.lock"
#: What a run writes before its first checkpoint: a directory holding no more can be resumed from the start or
#: reused as ``--out`` (the rest of a run, written from the first checkpoint on, is what makes it worth keeping).
_BEFORE_FIRST_CHECKPOINT = ("config.yaml", "metadata.json", LOCK_NAME)


def is_unstarted_run(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding nothing but what a run writes before its first checkpoint (an
    empty directory included)."""
    folder = Path(path)
    if not folder.is_dir():
        return False
    for entry in folder.iterdir():
        if entry.name == "checkpoints" and entry.is_dir():
            # dot-files are the temporary files of an interrupted atomic write
            if any(not p.name.startswith(".") for p in entry.iterdir()):
                return False
        elif entry.name not in _BEFORE_FIRST_CHECKPOINT:
            return False
    return True


def prepare_run_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (or accept an empty one, or one of a run that saved nothing) with its ``checkpoints``
    folder; refuse one that holds files."""
    path = Path(out_dir)
    if is_unstarted_run(path):
        for name in _BEFORE_FIRST_CHECKPOINT:
            if name != LOCK_NAME:  # the lock is held by this process
                (path / name).unlink(missing_ok=True)
        for leftover in (path / "checkpoints").glob(".*") if (path / "checkpoints").is_dir() else ():
            leftover.unlink(missing_ok=True)
        check_writable(path, "output directory", directory=True)
    else:
        prepare_out_dir(path)
    (path / "checkpoints").mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold :data:`LOCK_NAME` in ``run_dir`` for the block; a run another process is writing is refused."""
    import filelock

    lock = filelock.FileLock(str(run_dir / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise ModnasError(
            f"run directory {str(run_dir)!r} is in use by another modnas process; wait for it to finish"
        ) from None
    try:
        yield
    finally:
        lock.release()


def interruption_note(run_dir: str | Path, epochs: int | None = None) -> str:
    """One line for a search stopped by Ctrl-C: what ``run_dir`` holds and how to go on."""
    path = Path(run_dir)
    checkpoint = path / "checkpoints" / "last.pt"
    if checkpoint.is_file():
        try:
            epoch = int(load_checkpoint(checkpoint)["epoch"])
        except (ModnasError, KeyError, TypeError, ValueError):
            epoch = None
        if epoch is not None:
            of = f" of {epochs}" if epochs else ""
            return (
                f"interrupted: {path} holds epoch {epoch}{of} (checkpoints/last.pt); continue with "
                f"`modnas search --resume {path}`"
            )
    if is_unstarted_run(path):
        return (
            f"interrupted before the first epoch was saved: nothing to keep; `modnas search --resume {path}` starts "
            f"the run again, or give {path} as --out to a new search"
        )
    return "interrupted before anything was written"


def _plain(obj: Any) -> Any:
    """Numpy scalars and arrays -> Python numbers and tensors, so the checkpoint loads with ``weights_only=True``."""

    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


#: Bumped when the checkpoint layout changes; a checkpoint of another version is refused on resume.
CHECKPOINT_VERSION = 1


def _make_loop(config: SearchConfig) -> Any:
    """The search loop of ``config.mode``."""
    if config.mode == "benchmark":
        from modnas.search.benchmark import BenchmarkSearch

        return BenchmarkSearch(config)
    if config.mode == "oneshot":
        from modnas.search.oneshot import OneShotSearch

        return OneShotSearch(config)
    raise ModnasError(f"search mode {config.mode!r} is not implemented")  # pragma: no cover - config admits it


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A run checkpoint as a dict; a missing, truncated or foreign file is a one-line :class:`ModnasError`."""
    if not path.is_file():
        raise ModnasError(f"{str(path)!r} is missing: the run has no finished epoch to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of a damaged file come in many types
        raise ModnasError(f"checkpoint {str(path)!r} is damaged or not a modnas checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "epoch" not in state or "config" not in state:
        raise ModnasError(f"checkpoint {str(path)!r} is not a modnas run checkpoint")
    return state


def checkpoint_problem(run_dir: str | Path) -> str | None:
    """Why ``run_dir``'s checkpoint cannot be used by ``front``, ``export`` or ``--resume`` (``None``: it can)."""
    try:
        load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
    except ModnasError as exc:
        return f"{exc}; `modnas front`, `export` and `search --resume` cannot use this run"
    return None


def _previous_rows(path: Path, fields: tuple[str, ...], last_epoch: int) -> list[dict[str, Any]]:
    """Rows of a run's CSV up to ``last_epoch`` (later or cut-off rows belong to no checkpoint and are dropped)."""
    if not path.is_file():
        return []
    rows = []
    for raw in read_csv_rows(path, fields):
        if any(raw.get(f) is None for f in fields):
            continue  # a cut-off last line
        try:
            epoch = int(raw["epoch"])
        except ValueError:
            continue
        if epoch <= last_epoch:
            rows.append({k: raw[k] for k in fields})
    return rows


class _RunWriter:
    """Writes one run directory: checkpoint first, then the CSVs, each atomically."""

    def __init__(self, run_dir: Path, metrics: list[dict[str, Any]], fronts: list[dict[str, Any]], seconds: float):
        self.run_dir, self.metrics, self.fronts, self.seconds = run_dir, metrics, fronts, seconds

    def epoch_done(self, loop: Any, rows: list[dict[str, Any]], fronts: list[dict[str, Any]], seconds: float) -> None:
        self.seconds = seconds
        queries = loop.queries_used
        self.metrics += [{"epoch": loop.epoch, **row, "queries": queries} for row in rows]
        self.fronts += [{"epoch": loop.epoch, **row} for row in fronts]
        state = {**loop.state_dict(), "run": {"version": CHECKPOINT_VERSION, "seconds": seconds}}
        # the checkpoint first: the CSVs and the summary then never describe an epoch it does not hold
        try:
            atomic_torch_save(_plain(state), self.run_dir / "checkpoints" / "last.pt")
        except OSError as exc:
            raise self.write_failed(exc, loop.epoch - 1) from None
        try:
            self._write_csvs(loop)
        except OSError as exc:
            raise self.write_failed(exc, loop.epoch) from None

    def write_failed(self, exc: OSError, saved_epoch: int) -> OutputError:
        """The one-line error of a failed write: what failed, what the directory still holds, how to go on."""
        kept = (
            f"checkpoints/last.pt holds epoch {saved_epoch}" if saved_epoch > 0 else "no epoch was checkpointed yet"
        )
        return OutputError(
            f"writing run directory {str(self.run_dir)!r} failed ({os_error_reason(exc)}); {kept}: free space and "
            f"continue with `modnas search --resume {self.run_dir}`"
        )

    def _write_csvs(self, loop: Any) -> None:
        atomic_write_text(self.run_dir / "metrics.csv", csv_text(METRIC_FIELDS, self.metrics))
        atomic_write_text(self.run_dir / "fronts.csv", csv_text(FRONT_FIELDS, self.fronts))
        budget = getattr(loop, "budget", None)
        if budget is not None:
            rows_q = [
                {"order": k, "arch_str": key, "error": e}
                for k, (key, e) in enumerate(zip(budget.queried, budget.errors), start=1)
            ]
            atomic_write_text(self.run_dir / "queries.csv", csv_text(QUERY_FIELDS, rows_q))


def search(
    config: SearchConfig,
    out_dir: str | Path,
    progress: Progress | None = None,
    resume: bool = False,
    callbacks: Sequence[EpochCallback] = (),
) -> dict[str, Any]:
    """Run one search into a new run directory and return its summary (also written to ``summary.json``).

    With ``resume=True``, ``out_dir`` is an existing run directory: its checkpoint is loaded (it must come from the
    same ``config``; see :func:`resume_search`) and the search continues from the epoch after it. The run
    directory is locked while the search writes it (see :func:`run_lock`).
    After every epoch, once its files are written, the epoch's line is logged (``logging.INFO`` on this module's
    logger) and each of ``callbacks`` is called with an :class:`~modnas.search.trackers.EpochInfo`.
    """
    path = Path(out_dir)
    if not resume and not is_unstarted_run(path):
        prepare_out_dir(path)  # refuses a file or a directory holding results; creates the folder for the lock
    with run_lock(path):
        try:
            return _search(config, path, progress, resume, callbacks)
        except KeyboardInterrupt:
            raise Interrupted(interruption_note(path, config.epochs)) from None


def _search(
    config: SearchConfig, out_dir: Path, progress: Progress | None, resume: bool, callbacks: Sequence[EpochCallback]
) -> dict[str, Any]:
    if resume:
        run_dir = Path(out_dir)
        state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        _check_compatible(state, config, run_dir)
        loop = _make_loop(config)
        try:
            loop.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModnasError(f"checkpoint of {str(run_dir)!r} does not fit this search ({first})") from None
        epoch = loop.epoch
        writer = _RunWriter(
            run_dir,
            _previous_rows(run_dir / "metrics.csv", METRIC_FIELDS, epoch),
            _previous_rows(run_dir / "fronts.csv", FRONT_FIELDS, epoch),
            float(state["run"].get("seconds", 0.0)),
        )
        complete = (
            sum(int(r["epoch"]) == epoch for r in writer.metrics) == len(loop.eval_devices)
            and sum(int(r["epoch"]) == epoch for r in writer.fronts) == len(loop.eval_devices) * len(loop.eval_prefs)
        )
        if epoch > 0 and not complete:
            # killed between the checkpoint and the CSVs: score the checkpoint's epoch again (deterministic)
            rows, fronts = loop.evaluate()
            writer.metrics = [r for r in writer.metrics if int(r["epoch"]) < epoch]
            writer.fronts = [r for r in writer.fronts if int(r["epoch"]) < epoch]
            writer.epoch_done(loop, rows, fronts, writer.seconds)
    else:
        run_dir = prepare_run_dir(out_dir)
        atomic_write_text(run_dir / "config.yaml", config.to_yaml())
        loop = _make_loop(config)
        writer = _RunWriter(run_dir, [], [], 0.0)
    metadata = RunMetadata(run_dir, config.seed, f"search/{config.mode}", resume=resume)
    start = time.perf_counter() - writer.seconds
    total = config.epochs * loop.epoch_length()
    done = loop.epoch * loop.epoch_length()
    last_hv: float | None = None

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, last_hv)

    if progress is not None:
        progress(done, total, None)
    rows: list[dict[str, Any]] | None = None
    while loop.epoch < config.epochs:
        result = loop.run_epoch(tick)
        rows, last_hv = result.rows, result.mean_hv
        writer.epoch_done(loop, result.rows, result.fronts, time.perf_counter() - start)
        try:
            metadata.update(epoch=loop.epoch)
        except OSError as exc:
            raise writer.write_failed(exc, loop.epoch) from None
        info = EpochInfo(
            loop.epoch, config.epochs, result.rows, result.fronts, loop.queries_used, writer.seconds, run_dir,
            dict(result.extra),
        )
        logger.info(info.line())
        for callback in callbacks:
            callback(info)
        if progress is not None:
            progress(done, total, last_hv)
    if rows is None:  # resumed a run whose last epoch was already trained: score it again
        rows, _ = loop.evaluate()
    summary = summarise(rows, loop.queries_used, time.perf_counter() - start, loop.epoch)
    note = proxy_note(config)
    if note:
        summary["note"] = note
    try:
        atomic_write_json(run_dir / "summary.json", summary)
        metadata.finish()
    except OSError as exc:
        raise writer.write_failed(exc, loop.epoch) from None
    return summary


def _check_compatible(state: dict[str, Any], config: SearchConfig, run_dir: Path) -> None:
    run = state.get("run")
    version = run.get("version") if isinstance(run, dict) else None
    if version != CHECKPOINT_VERSION:
        raise ModnasError(
            f"checkpoint of {str(run_dir)!r} has format version {version!r}, this modnas writes {CHECKPOINT_VERSION}"
        )
    # runs written before spaces were named searched NB201; before the experimental section its settings were
    # at their old places
    saved, _ = upgrade_config_data({"space": "nb201", **state["config"]})
    if saved != config.model_dump(mode="json"):
        current = config.model_dump(mode="json")
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        raise ModnasError(f"checkpoint of {str(run_dir)!r} was written with a different config ({', '.join(diff)})")
    if int(state["epoch"]) > config.epochs:
        raise ModnasError(f"checkpoint of {str(run_dir)!r} is at epoch {state['epoch']}, past epochs={config.epochs}")


def resume_search(
    run_dir: str | Path, progress: Progress | None = None, callbacks: Sequence[EpochCallback] = ()
) -> dict[str, Any]:
    """Continue an interrupted run from ``run_dir``'s ``config.yaml`` and last checkpoint (``callbacks``: as
    :func:`search`).

    A complete run (summary.json written at the last epoch) is refused rather than touched; a damaged or
    incompatible checkpoint is refused before anything in the directory is rewritten.
    """
    from modnas.config import load_config

    path = Path(run_dir)
    if not path.is_dir():
        raise ModnasError(f"run directory {str(path)!r} does not exist")
    if not (path / "config.yaml").is_file():
        raise ModnasError(f"{str(path)!r} is not a run directory: config.yaml is missing")
    config = load_config(path / "config.yaml", quiet_upgrade=True)
    check_writable(path, "run directory", directory=True)
    if not (path / "checkpoints" / "last.pt").exists() and is_unstarted_run(path):
        # stopped before its first checkpoint: start again
        return search(config, path, progress=progress, callbacks=callbacks)
    state = load_checkpoint(path / "checkpoints" / "last.pt")
    if int(state["epoch"]) >= config.epochs and (path / "summary.json").is_file():
        raise ModnasError(f"run {str(path)!r} is already complete ({config.epochs} epochs); nothing to resume")
    return search(config, path, progress=progress, resume=True, callbacks=callbacks)


def queried_architectures(run_dir: str | Path) -> list[str]:
    """The architectures whose true accuracy a benchmark-mode run read (``queries.csv``), in query order.

    Measuring these on a new device (``modnas device measure --archs-from RUN``) lets the run's front compare
    them by measured latency there (``front_latency: measured``).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ModnasError(f"run directory {str(path)!r} does not exist")
    if not (path / "queries.csv").is_file():
        raise ModnasError(f"{str(path)!r} has no queries.csv: only a benchmark-mode run queries architectures")
    from modnas.problem import get_problem

    space = get_problem(run_space(path)).space
    archs = [row["arch_str"] for row in read_csv_rows(path / "queries.csv", ("arch_str",))]
    return [space.canonical_key(a) for a in archs]


def run_space(run_dir: str | Path) -> str:
    """The search space (problem name) a run directory was written for; ``nb201`` for runs that predate the
    ``space`` field."""
    try:
        data = read_yaml_mapping(Path(run_dir) / "config.yaml", "config file")
    except ModnasError:
        return "nb201"
    return str(data.get("space", "nb201"))


def _float_or_none(text: str, what: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ModnasError(f"{what}: {text!r} is not a number") from None
    return None if math.isnan(value) else value


def proxy_note(config: SearchConfig) -> str | None:
    """The caveat that goes with a one-shot run's HV (``None`` in benchmark mode, whose HV needs none)."""
    if config.mode != "oneshot":
        return None
    return (
        f"HV rates the architectures by their NB201 CIFAR-10 table accuracy and device latency (the shared "
        f"scorer); the search trained on {config.oneshot.dataset}, so on it the HV is a proxy"
    )


def run_note(run_dir: str | Path) -> str | None:
    """:func:`proxy_note` of the run in ``run_dir`` (``None`` if its config cannot be read)."""
    try:
        return proxy_note(make_config(read_yaml_mapping(Path(run_dir) / "config.yaml", "config file")))
    except ModnasError:
        return None


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
    needed = ("epoch", *ROW_FIELDS)  # runs written before the ``queries`` column still read
    reader = read_csv_rows(metrics, needed)
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for line_no, raw in enumerate(reader, start=2):
        if any(raw.get(f) is None for f in needed):
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
    expected = run_devices(run_dir)
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


def run_devices(run_dir: Path) -> set[str]:
    """The devices every complete epoch of a run scores: its config's evaluation devices (a directory without a
    readable config.yaml is taken to hold a default NB201 run, as every run did before spaces were named)."""
    try:
        config = make_config(read_yaml_mapping(run_dir / "config.yaml", "config file"))
    except ModnasError:
        config = make_config({})
    return set(config.evaluation_devices())
