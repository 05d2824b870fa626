"""Run directories: the one module that names, writes and reads the files of a search run and of a benchmark.

A search's run directory (:class:`RunDir`) holds

* ``config.yaml`` -- the resolved :class:`~modnas.config.SearchConfig`;
* ``metrics.csv`` -- ``epoch, device, split, hv, igd_plus, n_front, queries`` for every evaluation device after
  every epoch (``queries``: distinct architectures whose true accuracy the search had read by then);
* ``fronts.csv`` -- ``epoch, device, ray, preference, arch_str``: the architecture chosen for every evaluation ray;
* ``queries.csv`` -- ``order, arch_str, error``: every architecture whose true accuracy was read, in order;
* ``checkpoints/last.pt`` -- hypernetwork, optimiser, error predictor, query budget, RNG states and epoch;
* ``summary.json`` -- the last epoch's rows and means, the number of queries used and the wall time;
* ``metadata.json`` -- modnas version and git commit, command line, start/end times, host, library versions, seed
  (written by :class:`modnas.search.metadata.RunMetadata`);
* ``.modnas.lock`` -- locked by the process writing the run, so a second one (``--resume`` twice) is refused.

Every file is written atomically (the checkpoint before the CSVs of its epoch), so a run killed at any moment
leaves complete files behind. The readers also accept every older layout: runs without ``space`` in their config
(NB201), with the ``experimental`` settings at their old places (moved quietly), without metrics.csv's
``queries`` column, without metadata.json, and without any config.yaml (a default NB201 run, for the plots and
``evaluate``). Lines cut off by a crash outside modnas (a copied or hand-edited file) are skipped.

A ``modnas benchmark`` directory (:class:`BenchmarkDir`) holds ``protocol.yaml``, ``results.csv``, ``curves.csv``,
``queries.csv``, ``summary.json``, ``report.md``, ``metadata.json``, the figures, and the run directories of its
MODNAS searches under ``modnas/seed<S>``; :class:`BenchmarkResult` is what it reads back.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modnas.config import SearchConfig, make_config
from modnas.errors import ModnasError
from modnas.io import (
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_writable,
    csv_text,
    prepare_out_dir,
    read_csv_rows,
    read_yaml_mapping,
)

if TYPE_CHECKING:
    from modnas.baselines.protocol import Protocol

CONFIG = "config.yaml"
METRICS = "metrics.csv"
FRONTS = "fronts.csv"
QUERIES = "queries.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoints/last.pt"
#: The lock a search holds on its run directory, so that two processes never write one run at once.
LOCK_NAME = ".modnas.lock"

METRIC_FIELDS = ("epoch", "device", "split", "hv", "igd_plus", "n_front", "queries")
FRONT_FIELDS = ("epoch", "device", "ray", "preference", "arch_str")
QUERY_FIELDS = ("order", "arch_str", "error")
#: one device's scores: a summary.json row, and what a metrics.csv row holds besides its epoch and queries
ROW_FIELDS = ("device", "split", "hv", "igd_plus", "n_front")
#: the metrics.csv columns every layout has (runs written before the ``queries`` column lack only that)
_METRIC_COLUMNS = ("epoch", *ROW_FIELDS)

#: Bumped when the checkpoint layout changes; a checkpoint of another version is refused on resume.
CHECKPOINT_VERSION = 1

#: What a run writes before its first checkpoint: a directory holding no more can be resumed from the start or
#: reused as ``--out`` (the rest of a run, written from the first checkpoint on, is what makes it worth keeping).
_BEFORE_FIRST_CHECKPOINT = (CONFIG, "metadata.json", LOCK_NAME)


# -- checkpoints ----------------------------------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Numpy scalars and arrays -> Python numbers and tensors, so the checkpoint loads with ``weights_only=True``."""
    import numpy as np
    import torch

    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    return obj


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A run checkpoint as a dict; a missing, truncated or foreign file is a one-line :class:`ModnasError`."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModnasError(f"{str(path)!r} is missing: the run has no finished epoch to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of a damaged file come in many types
        raise ModnasError(f"checkpoint {str(path)!r} is damaged or not a modnas checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "epoch" not in state or "config" not in state:
        raise ModnasError(f"checkpoint {str(path)!r} is not a modnas run checkpoint")
    return state


def run_record(state: dict[str, Any]) -> dict[str, Any]:
    """The ``run`` entry a checkpoint carries besides the loop's state: format ``version`` and search ``seconds``
    (empty for a foreign checkpoint)."""
    record = state.get("run")
    return record if isinstance(record, dict) else {}


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold :data:`LOCK_NAME` in ``run_dir`` for the block; a run another process is writing is refused."""
    import filelock

    lock = filelock.FileLock(str(Path(run_dir) / LOCK_NAME), timeout=0)
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


# -- reading a run's results ----------------------------------------------------------------------------------------


def _float_or_none(text: str, what: str) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ModnasError(f"{what}: {text!r} is not a number") from None
    return None if math.isnan(value) else value


def _parses(text: str, space: Any) -> bool:
    # a line cut off inside arch_str must not count: it is complete when it parses in the run's space
    try:
        space.parse(text)
    except ModnasError:
        return False
    return True


@dataclass
class RunData:
    """What the plots and the benchmark read from a run directory's metrics.csv and fronts.csv."""

    run_dir: Path
    #: the run's search space (problem name)
    space: str = "nb201"
    #: ``hv[epoch][device]`` and ``split[device]`` from metrics.csv (device order as written)
    hv: dict[int, dict[str, float]] = field(default_factory=dict)
    split: dict[str, str] = field(default_factory=dict)
    #: ``rays[epoch][device]`` = list of (ray, preference on error, arch_str), from fronts.csv
    rays: dict[int, dict[str, list[tuple[int, float, str]]]] = field(default_factory=dict)
    #: epochs with an HV for every evaluation device and every evaluation ray's architecture, ascending
    complete_epochs: list[int] = field(default_factory=list)

    def devices(self, epoch: int) -> list[str]:
        return list(self.hv[epoch])


class RunDir:
    """One search's run directory: where each of its files is, and the only code that writes or reads them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS

    @property
    def fronts_file(self) -> Path:
        return self.path / FRONTS

    @property
    def queries_file(self) -> Path:
        return self.path / QUERIES

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY

    @property
    def checkpoint_file(self) -> Path:
        return self.path / CHECKPOINT

    def require(self) -> RunDir:
        """``self``; a path that is not a directory is a one-line error."""
        if not self.path.is_dir():
            raise ModnasError(f"run directory {str(self.path)!r} does not exist")
        return self

    # -- starting, writing and stopping a run -----------------------------------------------------------------------

    def is_unstarted(self) -> bool:
        """Whether the directory holds nothing but what a run writes before its first checkpoint (an empty
        directory included)."""
        if not self.path.is_dir():
            return False
        for entry in self.path.iterdir():
            if entry.name == "checkpoints" and entry.is_dir():
                # dot-files are the temporary files of an interrupted atomic write
                if any(not p.name.startswith(".") for p in entry.iterdir()):
                    return False
            elif entry.name not in _BEFORE_FIRST_CHECKPOINT:
                return False
        return True

    def prepare(self) -> RunDir:
        """Create the directory (or accept an empty one, or one of a run that saved nothing) with its
        ``checkpoints`` folder; refuse one that holds files."""
        path = self.path
        if self.is_unstarted():
            for name in _BEFORE_FIRST_CHECKPOINT:
                if name != LOCK_NAME:  # the lock is held by this process
                    (path / name).unlink(missing_ok=True)
            for leftover in (path / "checkpoints").glob(".*") if (path / "checkpoints").is_dir() else ():
                leftover.unlink(missing_ok=True)
            check_writable(path, "output directory", directory=True)
        else:
            prepare_out_dir(path)
        (path / "checkpoints").mkdir(exist_ok=True)
        return self

    def write_config(self, config: SearchConfig) -> None:
        atomic_write_text(self.config_file, config.to_yaml())

    def save_checkpoint(self, state: dict[str, Any], seconds: float) -> None:
        """Write the loop's ``state`` with the run record (format version, search seconds so far)."""
        full = {**state, "run": {"version": CHECKPOINT_VERSION, "seconds": seconds}}
        atomic_torch_save(_plain(full), self.checkpoint_file)

    def write_epoch_files(
        self,
        metrics: Sequence[dict[str, Any]],
        fronts: Sequence[dict[str, Any]],
        queries: Sequence[dict[str, Any]] | None = None,
    ) -> None:
        """Rewrite metrics.csv, fronts.csv and (when the search queries) queries.csv, each atomically."""
        atomic_write_text(self.metrics_file, csv_text(METRIC_FIELDS, metrics))
        atomic_write_text(self.fronts_file, csv_text(FRONT_FIELDS, fronts))
        if queries is not None:
            atomic_write_text(self.queries_file, csv_text(QUERY_FIELDS, queries))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.summary_file, summary)

    def rows_up_to(self, name: str, last_epoch: int) -> list[dict[str, str]]:
        """The rows of metrics.csv or fronts.csv (``name``) up to ``last_epoch``, as written, for a resumed run to
        write again (later or cut-off rows belong to no checkpoint and are dropped)."""
        fields = {METRICS: METRIC_FIELDS, FRONTS: FRONT_FIELDS}[name]
        path = self.path / name
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

    def interruption_note(self, epochs: int | None = None) -> str:
        """One line for a search stopped by Ctrl-C: what the directory holds and how to go on."""
        path = self.path
        if self.checkpoint_file.is_file():
            try:
                epoch = int(load_checkpoint(self.checkpoint_file)["epoch"])
            except (ModnasError, KeyError, TypeError, ValueError):
                epoch = None
            if epoch is not None:
                of = f" of {epochs}" if epochs else ""
                return (
                    f"interrupted: {path} holds epoch {epoch}{of} (checkpoints/last.pt); continue with "
                    f"`modnas search --resume {path}`"
                )
        if self.is_unstarted():
            return (
                f"interrupted before the first epoch was saved: nothing to keep; `modnas search --resume {path}` "
                f"starts the run again, or give {path} as --out to a new search"
            )
        return "interrupted before anything was written"

    # -- the config -------------------------------------------------------------------------------------------------

    def config(self) -> SearchConfig:
        """The run's ``config.yaml``; every older layout is upgraded without a warning (its user cannot edit it)."""
        if not self.config_file.is_file():
            raise ModnasError(f"{str(self.path)!r} is not a run directory: config.yaml is missing")
        return make_config(read_yaml_mapping(self.config_file, "config file"), quiet_upgrade=True)

    def config_or_default(self) -> SearchConfig:
        """:meth:`config`, or a default NB201 config when the directory has no readable config.yaml (every run
        searched NB201 before spaces were named)."""
        try:
            return self.config()
        except ModnasError:
            return make_config({})

    def space(self) -> str:
        """The search space (problem name) the run was written for; ``nb201`` for runs that predate the ``space``
        field or have no readable config.yaml."""
        try:
            data = read_yaml_mapping(self.config_file, "config file")
        except ModnasError:
            return "nb201"
        return str(data.get("space", "nb201"))

    def evaluation_devices(self) -> set[str]:
        """The devices every complete epoch of the run scores: its config's evaluation devices."""
        return set(self.config_or_default().evaluation_devices())

    # -- the checkpoint ---------------------------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """``checkpoints/last.pt`` (see :func:`load_checkpoint`)."""
        return load_checkpoint(self.checkpoint_file)

    def checkpoint_problem(self) -> str | None:
        """Why the checkpoint cannot be used by ``front``, ``export`` or ``--resume`` (``None``: it can)."""
        try:
            self.checkpoint()
        except ModnasError as exc:
            return f"{exc}; `modnas front`, `export` and `search --resume` cannot use this run"
        return None

    # -- results ----------------------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any] | None:
        """``summary.json`` (``None`` when the run has none: it stopped before its last epoch)."""
        if not self.summary_file.is_file():
            return None
        try:
            data = json.loads(self.summary_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            raise ModnasError(f"{str(self.summary_file)!r} is damaged: it is not JSON") from None
        if not isinstance(data, dict):
            raise ModnasError(f"{str(self.summary_file)!r} is damaged: it does not hold a mapping")
        return data

    def seconds(self) -> float:
        """The search's wall time from summary.json (NaN when it has none or it cannot be read)."""
        with contextlib.suppress(ModnasError, KeyError, TypeError, ValueError):
            summary = self.summary()
            if summary is not None:
                return float(summary["seconds"])
        return math.nan

    def metric_rows(self) -> list[dict[str, Any]]:
        """The complete rows of metrics.csv, typed (``igd_plus`` and ``queries`` may be ``None``), in file order.

        A row counts when its epoch, device and split are given, its HV is a number (not NaN), its IGD+ a number
        or empty and its front size an integer: a line cut off before its front size is not a score.
        """
        if not self.metrics_file.is_file():
            raise ModnasError(f"{str(self.path)!r} has no {METRICS}: not a run directory, or no epoch finished")
        rows = []
        for line_no, raw in enumerate(read_csv_rows(self.metrics_file, _METRIC_COLUMNS), start=2):
            if any(raw.get(f) in (None, "") for f in ("epoch", "device", "split")):
                continue
            if any(raw.get(f) is None for f in _METRIC_COLUMNS):
                continue  # a cut-off last line
            where = f"{self.metrics_file} line {line_no}"
            try:
                epoch = int(raw["epoch"])
                hv = _float_or_none(raw["hv"], where)
                igd_plus = _float_or_none(raw["igd_plus"], where)
                n_front = int(raw["n_front"])
            except (ValueError, ModnasError):
                continue
            if hv is None:
                continue
            queries = None
            with contextlib.suppress(ValueError, TypeError):
                if raw.get("queries") not in (None, ""):
                    queries = int(float(raw["queries"]))
            rows.append({"epoch": epoch, "device": raw["device"], "split": raw["split"], "hv": hv,
                         "igd_plus": igd_plus, "n_front": n_front, "queries": queries})
        return rows

    def front_rows(self, space: Any = None) -> list[dict[str, Any]]:
        """The complete rows of fronts.csv, typed: ``epoch``, ``device``, ``ray``, ``preference`` (the weight on
        the first objective) and ``arch_str``, which must parse in the run's space (or ``space``)."""
        if not self.fronts_file.is_file():
            raise ModnasError(f"{str(self.path)!r} has no {FRONTS}: not a run directory, or no epoch finished")
        if space is None:
            from modnas.problem import get_problem

            space = get_problem(self.space()).space
        rows = []
        for raw in read_csv_rows(self.fronts_file, FRONT_FIELDS):
            if any(raw.get(c) in (None, "") for c in FRONT_FIELDS):
                continue
            try:
                epoch, ray = int(raw["epoch"]), int(raw["ray"])
                pref = float(raw["preference"].split(";")[0])
            except ValueError:
                continue
            if not _parses(raw["arch_str"], space):
                continue
            rows.append({"epoch": epoch, "device": raw["device"], "ray": ray, "preference": pref,
                         "arch_str": raw["arch_str"]})
        return rows

    def epochs(self, space: Any = None, devices: Sequence[str] | None = None, rays: int | None = None) -> RunData:
        """HV per epoch and device, each epoch's rays, and the complete epochs (see :class:`RunData`).

        An epoch is complete when metrics.csv scores every one of ``devices`` (default: the run's evaluation
        devices) and fronts.csv holds ``rays`` architectures (default: the most any device has) for each of them.
        """
        data = RunData(run_dir=self.path, space=self.space())
        metrics = self.metric_rows()
        fronts = self.front_rows(space)
        for row in metrics:
            data.hv.setdefault(row["epoch"], {}).setdefault(row["device"], row["hv"])
            data.split.setdefault(row["device"], row["split"])
        for row in fronts:
            data.rays.setdefault(row["epoch"], {}).setdefault(row["device"], []).append(
                (row["ray"], row["preference"], row["arch_str"])
            )
        n_rays = rays if rays is not None else max(
            (len(r) for per in data.rays.values() for r in per.values()), default=0
        )
        expected = set(devices) if devices is not None else self.evaluation_devices()
        data.complete_epochs = sorted(
            e
            for e, per_device in data.hv.items()
            if set(per_device) >= expected
            and e in data.rays
            and all(len(data.rays[e].get(d, ())) == n_rays for d in expected)
        )
        return data

    def last_scores(self) -> list[dict[str, Any]]:
        """Per-device rows (:data:`ROW_FIELDS`) of the run: ``summary.json``'s, or else the last epoch that
        metrics.csv scores on every evaluation device (an interrupted run), one row per device in the order
        written."""
        self.require()
        try:
            summary = self.summary()
            if summary is not None:
                rows = summary["devices"]
                if not isinstance(rows, list) or not rows:
                    raise ValueError
                return [{k: row[k] for k in ROW_FIELDS} for row in rows]
        except (ValueError, KeyError, TypeError):  # a ModnasError of summary() is a ValueError too
            raise ModnasError(
                f"{str(self.summary_file)!r} is damaged: it does not hold a 'devices' list of rows"
            ) from None
        if not self.metrics_file.is_file():
            raise ModnasError(
                f"{str(self.path)!r} holds neither summary.json nor metrics.csv: not a run, or no epoch finished"
            )
        by_epoch: dict[int, list[dict[str, Any]]] = {}
        for row in self.metric_rows():
            by_epoch.setdefault(row["epoch"], []).append({k: row[k] for k in ROW_FIELDS})
        expected = self.evaluation_devices()
        complete = [e for e, rows in by_epoch.items() if {r["device"] for r in rows} >= expected]
        if not complete:
            raise ModnasError(f"{str(self.path)!r} is truncated: metrics.csv holds no complete epoch")
        seen: set[str] = set()
        ordered = []
        for row in by_epoch[max(complete)]:  # one row per device, in the order written
            if row["device"] not in seen:
                seen.add(row["device"])
                ordered.append(row)
        return ordered

    def queried_architectures(self) -> list[str]:
        """The architectures whose true accuracy a benchmark-mode run read (``queries.csv``), in query order, as
        canonical keys of the run's space."""
        self.require()
        if not self.queries_file.is_file():
            raise ModnasError(f"{str(self.path)!r} has no queries.csv: only a benchmark-mode run queries architectures")
        from modnas.problem import get_problem

        space = get_problem(self.space()).space
        archs = [row["arch_str"] for row in read_csv_rows(self.queries_file, ("arch_str",))]
        return [space.canonical_key(a) for a in archs]

    def queries_per_epoch(self, config: SearchConfig) -> dict[int, int]:
        """Distinct accuracy queries by the end of each epoch: metrics.csv's ``queries`` column, or for runs
        written before it, derived from ``config``'s query schedule and queries.csv."""
        rows = self.metric_rows()
        out = {row["epoch"]: row["queries"] for row in rows if row["queries"] is not None}
        if out:
            return out
        # initial queries, then queries_per_round after every query round, capped at K and at queries.csv
        total = len(read_csv_rows(self.queries_file, ("order",)))
        for e in sorted({row["epoch"] for row in rows}):
            rounds = 0 if e < config.query_start_epoch else (e - config.query_start_epoch) // config.query_every + 1
            out[e] = min(total, config.query_budget, config.initial_queries + rounds * config.queries_per_round)
        return out


def load_run(run_dir: str | Path) -> RunData:
    """Read ``metrics.csv`` and ``fronts.csv`` of a run (see :meth:`RunDir.epochs`); a run without a complete
    epoch is a one-line error."""
    run = RunDir(run_dir).require()
    data = run.epochs()
    if not data.complete_epochs:
        raise ModnasError(f"{str(run.path)!r} is truncated: metrics.csv and fronts.csv hold no complete epoch")
    return data


# -- benchmark directories ------------------------------------------------------------------------------------------

RESULT_FIELDS = ("method", "device", "split", "seed", "budget", "scope", "hv", "igd_plus", "n_front", "seconds")
CURVE_FIELDS = ("method", "device", "split", "seed", "budget", "epoch", "hv", "igd_plus", "n_front")
BENCHMARK_QUERY_FIELDS = ("method", "device", "seed", "budget", "order", "arch_str")
_INT_FIELDS = {"seed", "budget", "n_front", "epoch", "order", "arch_index"}
_FLOAT_FIELDS = {"hv", "igd_plus", "seconds"}


@dataclass
class BenchmarkResult:
    """Everything a benchmark run produced (also written to its directory)."""

    protocol: Protocol
    results: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    settings: dict[str, dict[str, Any]]
    seconds: float
    out_dir: Path
    modnas_runs: list[str]
    cpu_seconds: float = math.nan  # this process and its finished workers: the machine-load-free cost


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in row.items():
        if key in _INT_FIELDS:
            out[key] = int(text) if text not in ("", None) else None
        elif key in _FLOAT_FIELDS:
            out[key] = float(text) if text not in ("", None) else (math.nan if key == "seconds" else None)
        else:
            out[key] = text
    return out


class BenchmarkDir:
    """A ``modnas benchmark`` output directory: its tables, summary, report, and its MODNAS run directories."""

    TABLES = (("results", RESULT_FIELDS), ("curves", CURVE_FIELDS), ("queries", BENCHMARK_QUERY_FIELDS))

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def prepare(self) -> BenchmarkDir:
        """Create the directory (or accept an empty one); refuse one that holds files."""
        prepare_out_dir(self.path)
        return self

    def modnas_run(self, seed: int) -> Path:
        """Where the MODNAS search of ``seed`` writes its run directory."""
        return self.path / "modnas" / f"seed{seed}"

    def write_protocol(self, protocol: Protocol) -> None:
        atomic_write_text(self.path / "protocol.yaml", protocol.to_yaml())

    def write_tables(self, result: BenchmarkResult) -> None:
        """results.csv, curves.csv and queries.csv; floats with 6 significant digits, None and NaN empty."""
        for name, fields in self.TABLES:
            atomic_write_text(self.path / f"{name}.csv", csv_text(fields, getattr(result, name), digits=6))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.path / "summary.json", summary)

    def write_report(self, text: str) -> None:
        atomic_write_text(self.path / "report.md", text)

    def load(self) -> BenchmarkResult:
        """Read a finished benchmark back (to redraw figures or rewrite the report without rerunning)."""
        from modnas.baselines.protocol import load_protocol

        protocol = load_protocol(self.path / "protocol.yaml")
        tables = {name: [_typed(r) for r in read_csv_rows(self.path / f"{name}.csv", fields)]
                  for name, fields in self.TABLES}
        summary_path = self.path / "summary.json"
        summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
        return BenchmarkResult(
            protocol, tables["results"], tables["curves"], tables["queries"], summary.get("settings", {}),
            float(summary.get("wall_seconds", math.nan)), self.path, list(summary.get("modnas_runs", [])),
            float(summary.get("cpu_seconds") or math.nan),
        )


def load_benchmark(out_dir: str | Path) -> BenchmarkResult:
    """Read a finished benchmark directory back (see :meth:`BenchmarkDir.load`)."""
    return BenchmarkDir(out_dir).load()
