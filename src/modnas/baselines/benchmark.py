"""Run a benchmark protocol: MODNAS and the baselines on the same devices, scored by the one shared scorer.

Budget accounting. Every method counts the distinct architectures whose true accuracy it read. MODNAS spends its
K queries once for all 19 devices; a baseline spends its budget on one device. Two views follow:

* **same total budget** -- each baseline gets ``round(K / 19)`` queries per device (11 for K = 200, 209 in all,
  slightly more than MODNAS's 200), in a dedicated run whose budget-dependent settings follow that budget;
* **K per device** -- each baseline gets K queries on every device (19 K in all).

A baseline's HV at budget b is the shared scorer applied to the first b architectures it queried, so the K run
also gives the whole HV-versus-budget curve. MODNAS is scored on the front of its last epoch, one architecture per
evaluation ray (re-scored here from ``fronts.csv``).

Outputs (all written atomically into a new directory, see :class:`~modnas.rundir.BenchmarkDir`):
``protocol.yaml``, ``results.csv``, ``curves.csv``, ``queries.csv``, ``summary.json``, ``report.md`` and the
figures of :mod:`modnas.baselines.figures`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modnas.baselines import figures, report
from modnas.baselines.protocol import MODNAS, MODNAS_PREDICTED_LATENCY, Protocol
from modnas.errors import ModnasError
from modnas.io import prepare_out_dir
from modnas.problem import DEFAULT_SPACE, get_problem
from modnas.rundir import BenchmarkDir, BenchmarkResult, RunDir, load_run

PER_DEVICE = "per device"
ALL_DEVICES = "all devices"

#: ``progress(jobs_done, jobs_total, label_of_the_job_just_finished)``
Progress = Callable[[int, int, str], None]


# -- jobs (module-level functions, so that worker processes can run them) ----------------------------------------


@dataclass(frozen=True)
class Job:
    """One unit of work: a baseline on one device and seed at one budget, or one MODNAS search."""

    method: str
    seed: int
    budget: int
    device: str = ""  # empty for MODNAS, which serves every device at once
    curve: tuple[int, ...] = ()  # budgets at which to score the run's prefix (empty: the final budget only)
    run_dir: str = ""  # MODNAS only
    config: str | None = None  # MODNAS only
    overrides: tuple[tuple[str, Any], ...] = ()  # MODNAS only
    space: str = DEFAULT_SPACE

    @property
    def label(self) -> str:
        if self.method == MODNAS:
            return f"modnas seed {self.seed}"
        return f"{self.method} {self.device} seed {self.seed} K={self.budget}"

    @property
    def cost(self) -> float:
        """Rough CPU seconds, to start the longest jobs first (measured on a 2-core CPU)."""
        if self.method == MODNAS:
            return 1e6
        per_query = {"gp": 0.1, "motpe": 0.01, "nsga2": 0.003}.get(self.method, 0.001)
        return per_query * self.budget


def _score_row(queried: Sequence[str], device: str, space: str) -> dict[str, Any]:
    from modnas.evaluation.scorer import score_keys

    s = score_keys(list(queried), device, problem=space)
    return {"hv": s.hv, "igd_plus": s.igd_plus, "n_front": s.n_front}


def run_job(job: Job) -> dict[str, Any]:
    """Run one job and score it with the shared scorer; returns plain data (it crosses process boundaries)."""
    if job.method == MODNAS:
        return _modnas_job(job)
    from modnas.baselines.methods import run_baseline

    result = run_baseline(job.method, job.device, job.budget, job.seed, problem=job.space)
    split = get_problem(job.space).devices.get(job.device).split
    final = {"method": job.method, "device": job.device, "split": split, "seed": job.seed,
             "budget": job.budget, "scope": PER_DEVICE, **_score_row(result.queried, job.device, job.space),
             "seconds": result.seconds}
    curve = [
        {"method": job.method, "device": job.device, "split": split, "seed": job.seed, "budget": b, "epoch": None,
         **_score_row(result.queried[:b], job.device, job.space)}
        for b in job.curve
    ]
    return {"results": [final], "curves": curve, "queried": list(result.queried), "settings": result.settings}


def _modnas_job(job: Job) -> dict[str, Any]:
    from modnas.config import load_config
    from modnas.search import search

    config = load_config(job.config, dict(job.overrides))
    search(config, job.run_dir)
    return {"run_dir": job.run_dir}


def _init_worker() -> None:
    import torch

    # one job per core: intra-op threads would only fight the other worker for the same cores
    torch.set_num_threads(1)


@contextlib.contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Worker processes inherit one-thread settings for the BLAS/OpenMP pools they start."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    before = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_jobs(jobs: Sequence[Job], workers: int, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run jobs (longest first) in ``workers`` processes, or in this process for one worker; keeps job order."""
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    done = 0
    if workers <= 1 or len(jobs) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for i in order:
                out[i] = run_job(jobs[i])
                done += 1
                if progress is not None:
                    progress(done, len(jobs), jobs[i].label)
        finally:
            torch.set_num_threads(threads)
        return out  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    with _single_threaded_env(), ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
        pending: dict[Future, int] = {pool.submit(run_job, jobs[i]): i for i in order}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = pending.pop(future)
                    out[i] = future.result()
                    done += 1
                    if progress is not None:
                        progress(done, len(jobs), jobs[i].label)
        except BrokenProcessPool:
            raise ModnasError("a benchmark worker process died (out of memory?); rerun with workers: 1") from None
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return out  # type: ignore[return-value]


# -- MODNAS runs ---------------------------------------------------------------------------------------------------


def modnas_rows(
    run_dir: str | Path, budget: int, space: str = DEFAULT_SPACE
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Result rows (last complete epoch) and curve rows (every epoch) of a MODNAS run, re-scored here.

    The run must have used query budget ``budget``; its per-device rows hold the shared scorer's HV of the
    architectures chosen for the evaluation rays.
    """
    from modnas.evaluation.scorer import score

    path = Path(run_dir)
    config = _run_config(path, budget, space)
    run = load_run(path)
    queries = RunDir(path).queries_per_epoch(config)
    seconds = RunDir(path).seconds()
    last = run.complete_epochs[-1]
    results, curves = [], []
    for epoch in run.complete_epochs:
        for device in get_problem(config.space).devices.names("protocol"):
            archs = [a for _, _, a in run.rays[epoch][device]]
            s = score(archs, device, problem=config.space)
            row = {"method": MODNAS, "device": device, "split": s.split, "seed": config.seed,
                   "hv": s.hv, "igd_plus": s.igd_plus, "n_front": s.n_front}
            curves.append({**row, "budget": queries.get(epoch, config.query_budget), "epoch": epoch})
            if epoch == last:
                used = queries.get(epoch, config.query_budget)
                results.append({**row, "budget": used, "scope": ALL_DEVICES, "seconds": seconds})
    return results, curves


def predicted_latency_rows(run_dir: str | Path, results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ablation rows of a MODNAS run: its trained hypernetwork's front re-chosen with ``front_latency:
    predicted`` (the MetaPredictor's latency on every device, also where the device's latency was measured),
    scored like ``results`` (the run's own rows). Empty when the run's front does not use measured latencies."""
    from modnas.evaluation.scorer import score_keys
    from modnas.search.trained import TrainedSearch

    trained = TrainedSearch.load(run_dir)
    config = trained.config
    if config.mode != "benchmark" or config.front != "hypernet+measured" or config.front_latency == "predicted":
        return []
    trained.config = config.model_copy(update={"front_latency": "predicted"})
    prefs = trained.preferences()
    rows = []
    for row in results:
        keys = trained.architectures(trained.device(row["device"]), prefs)
        s = score_keys(list(keys), row["device"], config.objectives, trained.problem)
        rows.append({**row, "method": MODNAS_PREDICTED_LATENCY, "hv": s.hv, "igd_plus": s.igd_plus,
                     "n_front": s.n_front})
    return rows


# -- the whole protocol --------------------------------------------------------------------------------------------


def plan_jobs(protocol: Protocol, out_dir: Path, modnas_runs: Sequence[str] = ()) -> list[Job]:
    """Every job of a protocol: MODNAS searches (unless runs are reused), then baselines x devices x seeds x views."""
    jobs: list[Job] = []
    if MODNAS in protocol.methods and not modnas_runs:
        settings = protocol.modnas
        for seed in protocol.seeds:
            overrides = {**settings.overrides, "seed": seed, "query_budget": protocol.budget}
            if protocol.space != DEFAULT_SPACE:  # the default stays out, so NB201 configs are as they were
                overrides["space"] = protocol.space
            jobs.append(Job(MODNAS, seed, protocol.budget, run_dir=str(BenchmarkDir(out_dir).modnas_run(seed)),
                            config=settings.config, overrides=tuple(sorted(overrides.items())), space=protocol.space))
    budgets = [protocol.budget]
    if protocol.same_total_budget != protocol.budget:
        budgets.append(protocol.same_total_budget)
    curve = tuple(protocol.curve_budgets())
    for method in protocol.baselines:
        for device in protocol.devices:
            for seed in protocol.seeds:
                for b in budgets:
                    jobs.append(Job(method, seed, b, device=device, curve=curve if b == protocol.budget else (),
                                    space=protocol.space))
    return jobs


def _validate_modnas_config(protocol: Protocol) -> None:
    """Fail before any job starts if the MODNAS settings do not make a valid search config."""
    from modnas.config import load_config

    given = protocol.modnas.overrides.get("query_budget")
    if given is not None and given != protocol.budget:
        raise ModnasError(
            f"modnas.overrides.query_budget ({given}) differs from the protocol budget ({protocol.budget}); "
            "set budget instead"
        )
    overrides = {**protocol.modnas.overrides, "query_budget": protocol.budget}
    if protocol.space != DEFAULT_SPACE:
        overrides["space"] = protocol.space
    config = load_config(protocol.modnas.config, overrides)
    if config.mode != "benchmark":
        raise ModnasError(f"MODNAS config mode is {config.mode!r}; the benchmark compares benchmark mode")
    _check_comparable(config, "the MODNAS config", protocol.space)


def _run_config(run_dir: Path, budget: int, space: str = DEFAULT_SPACE) -> Any:
    """The config of a reusable MODNAS run directory, checked against the protocol's budget."""
    config = RunDir(run_dir).config()
    if config.mode != "benchmark":
        raise ModnasError(f"run {str(run_dir)!r} is a {config.mode!r} search; the benchmark compares benchmark mode")
    if config.query_budget != budget:
        raise ModnasError(f"run {str(run_dir)!r} used query budget {config.query_budget}, the protocol's is {budget}")
    _check_comparable(config, f"run {str(run_dir)!r}", space)
    return config


def _check_comparable(config: Any, what: str, space: str = DEFAULT_SPACE) -> None:
    """The comparison needs MODNAS on (error, latency) in the protocol's space, scored on every protocol device."""
    if config.space != space:
        raise ModnasError(f"{what} searched {config.space}; the protocol compares {space}")
    if tuple(config.objectives) != ("error", "latency"):
        raise ModnasError(f"{what} optimises {','.join(config.objectives)}; the benchmark compares error,latency")
    protocol_devices = get_problem(space).devices.names("protocol")
    evaluated = config.evaluation_devices() if hasattr(config, "evaluation_devices") else protocol_devices
    missing = [d for d in protocol_devices if d not in evaluated]
    if missing:
        raise ModnasError(f"{what} does not score every protocol device (missing {', '.join(missing)})")


def check_inputs(protocol: Protocol, out_dir: str | Path, modnas_runs: Sequence[str | Path] = ()) -> list[str]:
    """Everything that can be wrong before any work starts; returns the MODNAS run directories to reuse."""
    path = Path(out_dir)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        prepare_out_dir(path)  # raises the one-line error
    runs = [str(r) for r in (modnas_runs or protocol.modnas.runs)]
    for r in runs:
        if not Path(r).is_dir():
            raise ModnasError(f"MODNAS run directory {r!r} does not exist")
        _run_config(Path(r), protocol.budget, protocol.space)
    if MODNAS in protocol.methods and not runs:
        _validate_modnas_config(protocol)
    if any(m in ("nsga2", "motpe", "gp") for m in protocol.baselines):
        from modnas.baselines.methods import _import_optuna

        _import_optuna()  # a missing optional dependency is reported before the work, not after
    return runs


def run_benchmark(
    protocol: Protocol,
    out_dir: str | Path,
    modnas_runs: Sequence[str | Path] = (),
    progress: Progress | None = None,
    command: str | None = None,
) -> BenchmarkResult:
    """Run a protocol into a new directory, write every table, figure and the report, and return the results."""
    from modnas.search.metadata import RunMetadata

    runs = check_inputs(protocol, out_dir, modnas_runs)
    bench = BenchmarkDir(out_dir).prepare()
    out = bench.path
    bench.write_protocol(protocol)

    metadata = RunMetadata(out, None, "benchmark")  # the seeds are in protocol.yaml
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    jobs = plan_jobs(protocol, out, runs)
    outputs = run_jobs(jobs, protocol.workers, progress)
    results: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    settings: dict[str, dict[str, Any]] = {}
    modnas_dirs = list(runs)
    for job, output in zip(jobs, outputs):
        if job.method == MODNAS:
            modnas_dirs.append(output["run_dir"])
            continue
        results += output["results"]
        curves += output["curves"]
        settings.setdefault(f"{job.method} K={job.budget}", output["settings"])
        queries += [{"method": job.method, "device": job.device, "seed": job.seed, "budget": job.budget,
                     "order": k, "arch_str": key} for k, key in enumerate(output["queried"], start=1)]
    if MODNAS in protocol.methods or runs:
        for run_dir in modnas_dirs:
            rows, curve_rows = modnas_rows(run_dir, protocol.budget, protocol.space)
            rows = [r for r in rows if r["device"] in protocol.devices]
            results = rows + predicted_latency_rows(run_dir, rows) + results
            curves = [r for r in curve_rows if r["device"] in protocol.devices] + curves
    result = BenchmarkResult(protocol, results, curves, queries, settings, 0.0, out, modnas_dirs)
    bench.write_tables(result)
    figures.write_figures(result)
    result.seconds = time.perf_counter() - start
    result.cpu_seconds = _cpu_seconds() - cpu_start
    summary = report.summarise(result)
    bench.write_summary(summary)
    bench.write_report(report.markdown(result, summary, command))
    metadata.finish()
    return result


def _cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (the worker processes)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
