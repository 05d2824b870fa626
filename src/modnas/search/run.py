"""Running a search into a run directory, resuming it, and reading its results back.

:func:`search` runs one search into a new run directory and returns its summary; :func:`resume_search` continues
an interrupted one from its last checkpoint; :func:`evaluate_run` and :func:`run_note` read a run's per-device
rows and the caveat that goes with them. The files of a run directory, their formats and every older layout are
the business of :mod:`modnas.rundir`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modnas import distributed
from modnas.config import SearchConfig, upgrade_config_data
from modnas.distributed import SINGLE, FromMain, Ranks
from modnas.errors import Interrupted, ModnasError, OutputError
from modnas.io import check_writable, os_error_reason, prepare_out_dir
from modnas.rundir import CHECKPOINT_VERSION, FRONTS, METRICS, ROW_FIELDS, RunDir, run_lock, run_record
from modnas.search.metadata import RunMetadata
from modnas.search.trackers import EpochCallback, EpochInfo

logger = logging.getLogger(__name__)

#: ``progress(steps_done, steps_total, last_mean_hv_or_None)``
Progress = Callable[[int, int, "float | None"], None]


def _make_loop(config: SearchConfig, ranks: Ranks = SINGLE) -> Any:
    """The search loop of ``config.mode`` (this process's part of it in a distributed run)."""
    if config.mode == "benchmark":
        from modnas.search.benchmark import BenchmarkSearch

        return BenchmarkSearch(config)
    if config.mode == "oneshot":
        from modnas.search.oneshot import OneShotSearch

        return OneShotSearch(config, ranks=ranks)
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


class _RunWriter:
    """Writes a search's epochs into its run directory: checkpoint first, then the CSVs, each atomically."""

    def __init__(self, run: RunDir, metrics: list[dict[str, Any]], fronts: list[dict[str, Any]], seconds: float):
        self.run, self.metrics, self.fronts, self.seconds = run, metrics, fronts, seconds
        self.run_dir = run.path

    def epoch_done(self, loop: Any, rows: list[dict[str, Any]], fronts: list[dict[str, Any]], seconds: float) -> None:
        self.seconds = seconds
        queries = loop.queries_used
        self.metrics += [{"epoch": loop.epoch, **row, "queries": queries} for row in rows]
        self.fronts += [{"epoch": loop.epoch, **row} for row in fronts]
        # the checkpoint first: the CSVs and the summary then never describe an epoch it does not hold
        try:
            self.run.save_checkpoint(loop.state_dict(), seconds)
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
        budget = getattr(loop, "budget", None)
        queries = None
        if budget is not None:
            queries = [
                {"order": k, "arch_str": key, "error": e}
                for k, (key, e) in enumerate(zip(budget.queried, budget.errors), start=1)
            ]
        self.run.write_epoch_files(self.metrics, self.fronts, queries)


def _join(config: SearchConfig) -> Ranks:
    """This process's place in the run: one process, or a rank of a one-shot search launched by torchrun."""
    if config.mode != "oneshot" and distributed.launched_world_size() > 1:
        raise ModnasError(
            f"{config.mode} mode runs in one process; only --mode oneshot searches run on several processes "
            f"(launch benchmark mode with python or modnas, not torchrun --nproc-per-node > 1)"
        )
    return distributed.setup(config.oneshot.device if config.mode == "oneshot" else "cpu")


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

    Launched by torchrun with several processes, a one-shot search runs across them (:mod:`modnas.distributed`):
    rank 0 reads and writes the run directory and reports, every rank returns the summary. When torchrun restarts
    the worker group after a failure (``--max-restarts``), a run directory with a checkpoint is resumed.
    """
    ranks = _join(config)
    try:
        if not ranks.is_main:
            return _follow(config, ranks)
        start = FromMain(ranks, "start the run")
        try:
            if config.hardware_predictor is not None and not Path(config.hardware_predictor).is_file():
                # before the run directory exists: nothing is written for a search that cannot start
                raise ModnasError(f"predictor checkpoint {config.hardware_predictor!r} does not exist")
            run = RunDir(out_dir)
            if not resume and distributed.elastic_restart() > 0 and run.checkpoint_file.is_file():
                resume = True  # torchrun restarted the workers after a failure: continue from the last checkpoint
            if not resume and not run.is_unstarted():
                prepare_out_dir(run.path)  # refuses a file or a directory holding results; creates the folder
            with run_lock(run.path):
                try:
                    summary = _search(config, run, progress, resume, callbacks, start)
                except KeyboardInterrupt:
                    raise Interrupted(run.interruption_note(config.epochs)) from None
        except BaseException as exc:
            start.fail(exc)
            raise
        return ranks.broadcast(summary)
    finally:
        distributed.teardown()


def _follow(config: SearchConfig, ranks: Ranks) -> dict[str, Any]:
    """A rank other than 0: the same steps on its share of the work, no files; returns rank 0's summary."""
    state = FromMain(ranks, "start the run").receive()  # a checkpoint's state, or None for a fresh run
    loop = _make_loop(config, ranks)
    if state is not None:
        loop.load_state_dict(state)
    while loop.epoch < config.epochs:
        loop.train_epoch()
    summary: dict[str, Any] = ranks.broadcast(None)
    return summary


def _search(
    config: SearchConfig, run: RunDir, progress: Progress | None, resume: bool, callbacks: Sequence[EpochCallback],
    start: FromMain,
) -> dict[str, Any]:
    run_dir = run.path
    ranks = start.ranks
    if resume:
        state = run.checkpoint()
        _check_compatible(state, config, run_dir)
        start.send(state)
        loop = _make_loop(config, ranks)
        try:
            loop.load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModnasError(f"checkpoint of {str(run_dir)!r} does not fit this search ({first})") from None
        epoch = loop.epoch
        writer = _RunWriter(
            run, run.rows_up_to(METRICS, epoch), run.rows_up_to(FRONTS, epoch),
            float(run_record(state).get("seconds", 0.0)),
        )
        complete = (
            run.metrics_file.is_file()
            and run.fronts_file.is_file()
            and epoch in run.epochs(loop.space, loop.eval_devices, len(loop.eval_prefs)).complete_epochs
        )
        if epoch > 0 and not complete:
            # killed between the checkpoint and the CSVs: score the checkpoint's epoch again (deterministic)
            rows, fronts = loop.evaluate()
            writer.metrics = [r for r in writer.metrics if int(r["epoch"]) < epoch]
            writer.fronts = [r for r in writer.fronts if int(r["epoch"]) < epoch]
            writer.epoch_done(loop, rows, fronts, writer.seconds)
    else:
        run.prepare()
        run.write_config(config)
        start.send(None)
        loop = _make_loop(config, ranks)
        writer = _RunWriter(run, [], [], 0.0)
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
    try:
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
    except BaseException as exc:
        # metadata.json says how the run ended: `interrupted` (Ctrl-C, SIGTERM) or `failed`; --resume continues it
        with contextlib.suppress(OSError):
            metadata.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
        raise
    if rows is None:  # resumed a run whose last epoch was already trained: score it again
        rows, _ = loop.evaluate()
    summary = summarise(rows, loop.queries_used, time.perf_counter() - start, loop.epoch)
    note = proxy_note(config)
    if note:
        summary["note"] = note
    try:
        run.write_summary(summary)
        metadata.finish()
    except OSError as exc:
        raise writer.write_failed(exc, loop.epoch) from None
    return summary


def _check_compatible(state: dict[str, Any], config: SearchConfig, run_dir: Path) -> None:
    version = run_record(state).get("version")
    if version != CHECKPOINT_VERSION:
        raise ModnasError(
            f"checkpoint of {str(run_dir)!r} has format version {version!r}, this modnas writes {CHECKPOINT_VERSION}"
        )
    # runs written before spaces were named searched NB201; before the experimental section its settings were
    # at their old places
    saved, _ = upgrade_config_data({"space": "nb201", **state["config"]})
    try:  # settings added since the run started take their defaults, as they do in its config.yaml
        saved = SearchConfig.model_validate(saved).model_dump(mode="json")
    except ValueError:
        pass  # reported as a difference below
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
    ranks = distributed.setup() if distributed.launched_world_size() > 1 else SINGLE
    announce = FromMain(ranks, "resume the run")
    if not ranks.is_main:  # the run directory may exist on rank 0's machine only: its config comes from there
        return search(announce.receive(), run_dir, resume=True, callbacks=callbacks)
    try:
        run = RunDir(run_dir).require()
        config = run.config()
        check_writable(run.path, "run directory", directory=True)
        # stopped before its first checkpoint: start again
        fresh = not run.checkpoint_file.exists() and run.is_unstarted()
        if not fresh:
            state = run.checkpoint()
            if int(state["epoch"]) >= config.epochs and run.summary_file.is_file():
                raise ModnasError(
                    f"run {str(run.path)!r} is already complete ({config.epochs} epochs); nothing to resume"
                )
    except BaseException as exc:
        announce.fail(exc)
        raise
    announce.send(config)
    return search(config, run.path, progress=progress, resume=not fresh, callbacks=callbacks)


def queried_architectures(run_dir: str | Path) -> list[str]:
    """The architectures whose true accuracy a benchmark-mode run read (``queries.csv``), in query order.

    Measuring these on a new device (``modnas device measure --archs-from RUN``) lets the run's front compare
    them by measured latency there (``front_latency: measured``).
    """
    return RunDir(run_dir).queried_architectures()


def proxy_note(config: SearchConfig) -> str | None:
    """The caveat that goes with a one-shot run's HV (``None`` in benchmark mode, whose HV needs none)."""
    if config.mode != "oneshot":
        return None
    from modnas.problem import get_problem

    extras = get_problem(config.space).extras
    if extras.get("quality") == "inherited":
        return (
            f"HV rates the architectures by the supernet's own cross-entropy on held-out {config.oneshot.dataset} "
            "text (0 to chance level) and device latency; `modnas evaluate RUN --inherited` gives test perplexity"
        )
    source = extras.get("accuracy_source", "the space's ground-truth accuracy")
    return (
        f"HV rates the architectures by {source} and device latency (the shared "
        f"scorer); the search trained on {config.oneshot.dataset}, so on it the HV is a proxy"
    )


def run_note(run_dir: str | Path) -> str | None:
    """:func:`proxy_note` of the run in ``run_dir`` (``None`` if its config cannot be read)."""
    try:
        return proxy_note(RunDir(run_dir).config())
    except ModnasError:
        return None


def evaluate_run(run_dir: str | Path) -> list[dict[str, Any]]:
    """Per-device rows of a run: ``summary.json``'s, or the last complete epoch of ``metrics.csv``."""
    return RunDir(run_dir).last_scores()
