"""modnas.rundir: the files of a run directory and of a benchmark directory, written and read back.

The runs here are synthetic (written by :class:`RunDir` itself, or in an older layout by hand), so the tests stay
fast; real searches write and read the same files in tests/search.
"""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import yaml

from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.rundir import (
    CHECKPOINT_VERSION,
    FRONTS,
    METRICS,
    BenchmarkDir,
    BenchmarkResult,
    RunDir,
    load_benchmark,
    load_checkpoint,
    load_run,
    run_record,
)
from modnas.spaces.nb201 import index_to_string

DEVICES = ("fpga", "pixel2", "raspi4")
SPLIT = {"fpga": "test", "pixel2": "test", "raspi4": "test"}
RAYS = 3
EPOCHS = 3
QUERIES_BY_EPOCH = {1: 12, 2: 14, 3: 16}


def _config(**overrides):
    return load_config(None, {"eval_devices": list(DEVICES), "eval_rays": RAYS, "epochs": EPOCHS,
                              "query_budget": 20, "initial_queries": 10, "queries_per_round": 2, **overrides})


def _epoch_rows(epoch: int) -> tuple[list[dict], list[dict]]:
    metrics = [{"epoch": epoch, "device": d, "split": SPLIT[d], "hv": 0.9 + 0.01 * epoch + 0.001 * k,
                "igd_plus": None if d == "pixel2" else 0.01 / epoch, "n_front": 2 + k,
                "queries": QUERIES_BY_EPOCH[epoch]} for k, d in enumerate(DEVICES)]
    fronts = [{"epoch": epoch, "device": d, "ray": r, "preference": f"{1 - r / 2:.6f};{r / 2:.6f}",
               "arch_str": index_to_string(100 * epoch + 10 * k + r)}
              for k, d in enumerate(DEVICES) for r in range(RAYS)]
    return metrics, fronts


def _write_run(path, epochs: int = EPOCHS, config=None, summary: bool = True) -> RunDir:
    """A run directory as a search writes it, epoch by epoch (checkpoint first, then the CSVs)."""
    config = config or _config()
    run = RunDir(path).prepare()
    run.write_config(config)
    metrics, fronts = [], []
    queries = [{"order": k, "arch_str": index_to_string(7 * k), "error": 10.0 + k} for k in range(1, 17)]
    for epoch in range(1, epochs + 1):
        m, f = _epoch_rows(epoch)
        metrics += m
        fronts += f
        run.save_checkpoint({"epoch": epoch, "config": config.model_dump(mode="json")}, seconds=1.5 * epoch)
        run.write_epoch_files(metrics, fronts, queries[: QUERIES_BY_EPOCH[epoch]])
    if summary:
        rows = [{k: r[k] for k in ("device", "split", "hv", "igd_plus", "n_front")} for r in metrics[-len(DEVICES):]]
        run.write_summary({"epoch": epochs, "devices": rows, "seconds": 4.5, "queries": QUERIES_BY_EPOCH[epochs]})
    return run


@pytest.fixture
def run(tmp_path) -> RunDir:
    return _write_run(tmp_path / "run")


# -- round trip -----------------------------------------------------------------------------------------------------


def test_round_trip(run):
    config = _config()
    assert run.config() == config and run.space() == "nb201"
    assert run.evaluation_devices() == set(DEVICES)
    state = run.checkpoint()
    assert state["epoch"] == EPOCHS and run_record(state) == {"version": CHECKPOINT_VERSION, "seconds": 4.5}
    assert load_checkpoint(run.checkpoint_file)["config"] == config.model_dump(mode="json")
    assert run.checkpoint_problem() is None

    rows = run.metric_rows()
    assert len(rows) == EPOCHS * len(DEVICES)
    assert rows[0] == {"epoch": 1, "device": "fpga", "split": "test", "hv": 0.91, "igd_plus": 0.01, "n_front": 2,
                       "queries": 12}
    assert rows[1]["igd_plus"] is None  # an empty cell
    data = run.epochs()
    assert data.complete_epochs == [1, 2, 3] and data.devices(2) == list(DEVICES)
    assert data.hv[3]["pixel2"] == pytest.approx(0.931) and data.split == SPLIT
    assert data.rays[2]["raspi4"] == [(r, 1 - r / 2, index_to_string(220 + r)) for r in range(RAYS)]
    assert load_run(run.path).complete_epochs == data.complete_epochs

    last = run.last_scores()  # from summary.json
    assert [r["device"] for r in last] == list(DEVICES) and last[0]["hv"] == pytest.approx(0.93)
    (run.summary_file).unlink()
    assert run.last_scores() == last  # the same from metrics.csv
    assert run.summary() is None and math.isnan(run.seconds())
    assert run.queries_per_epoch(config) == QUERIES_BY_EPOCH
    assert run.queried_architectures() == [index_to_string(7 * k) for k in range(1, 17)]


def test_rows_up_to_rewrite_the_files_as_they_were(run, tmp_path):
    copy = RunDir(tmp_path / "copy").prepare()
    copy.write_epoch_files(run.rows_up_to(METRICS, EPOCHS), run.rows_up_to(FRONTS, EPOCHS))
    for name in (METRICS, FRONTS):
        assert (copy.path / name).read_text() == (run.path / name).read_text()
    assert {int(r["epoch"]) for r in run.rows_up_to(METRICS, 2)} == {1, 2}
    assert run.rows_up_to(FRONTS, 0) == []
    assert RunDir(tmp_path / "nothing").rows_up_to(METRICS, 3) == []


def test_unstarted_runs_and_the_interruption_note(tmp_path, run):
    fresh = RunDir(tmp_path / "fresh")
    assert not fresh.is_unstarted()  # not there yet
    fresh.prepare()
    assert fresh.is_unstarted() and (fresh.path / "checkpoints").is_dir()
    fresh.write_config(_config())
    assert fresh.is_unstarted()
    assert "nothing to keep" in fresh.interruption_note(3)
    assert not run.is_unstarted()
    assert run.interruption_note(5) == (
        f"interrupted: {run.path} holds epoch 3 of 5 (checkpoints/last.pt); continue with "
        f"`modnas search --resume {run.path}`"
    )
    with pytest.raises(ModnasError, match="not empty"):
        RunDir(run.path).prepare()


# -- truncated and partial epochs -----------------------------------------------------------------------------------


def _cut_last_line(path, keep: int) -> str:
    """Cut the file's last line after its first ``keep`` characters (a copy made while it was written, or a
    disk that filled up); ``keep`` counts from the end when negative. Returns the cut line."""
    text = path.read_text().rstrip("\n")
    head, _, last = text.rpartition("\n")
    path.write_text(head + "\n" + last[:keep])
    return last[:keep]


@pytest.mark.parametrize("field", [1, 2, 3, 4])
@pytest.mark.parametrize("inside", [False, True])
def test_a_cut_off_metrics_line_is_not_a_score(run, field, inside):
    """Wherever the last line is cut before its front size, the epoch it belongs to is not complete, for evaluate
    and the plots alike (the plots once drew a cut-off HV such as 0.93 for 0.9320000000000002)."""
    run.summary_file.unlink()
    last = run.metrics_file.read_text().splitlines()[-1]
    assert last.startswith("3,raspi4,test,0.93")
    commas = [i for i, c in enumerate(last) if c == ","]
    # after the field's first character, or just before the comma that ends it
    keep = commas[field - 1] + 2 if inside else commas[field]
    cut = _cut_last_line(run.metrics_file, keep)
    assert cut.count(",") == field
    assert run.epochs().complete_epochs == [1, 2]
    assert load_run(run.path).complete_epochs == [1, 2]
    assert [r["hv"] for r in run.last_scores()] == pytest.approx([0.92, 0.921, 0.922])
    assert all(r["epoch"] != 3 or r["device"] != "raspi4" for r in run.metric_rows())


def test_a_cut_off_front_line_leaves_the_scores(run):
    run.summary_file.unlink()
    _cut_last_line(run.fronts_file, 30)  # inside the arch string of the last ray
    assert run.epochs().complete_epochs == [1, 2]
    assert load_run(run.path).complete_epochs == [1, 2]
    assert [r["hv"] for r in run.last_scores()] == pytest.approx([0.93, 0.931, 0.932])  # metrics.csv is whole


def test_a_device_or_a_ray_missing_makes_an_epoch_partial(run):
    run.summary_file.unlink()
    lines = run.metrics_file.read_text().splitlines()
    run.metrics_file.write_text("\n".join(ln for ln in lines if not ln.startswith("2,pixel2,")) + "\n")
    assert run.epochs().complete_epochs == [1, 3]
    lines = run.fronts_file.read_text().splitlines()
    run.fronts_file.write_text("\n".join(ln for ln in lines if not ln.startswith("3,fpga,1,")) + "\n")
    assert run.epochs().complete_epochs == [1]
    assert run.epochs(rays=RAYS, devices=["pixel2", "raspi4"]).complete_epochs == [1, 3]
    assert run.last_scores()[0]["hv"] == pytest.approx(0.93)  # metrics of epoch 3 are complete


def test_runs_without_a_complete_epoch_are_one_line_errors(tmp_path, run):
    with pytest.raises(ModnasError, match="does not exist"):
        RunDir(tmp_path / "missing").last_scores()
    empty = RunDir(tmp_path / "empty").prepare()
    with pytest.raises(ModnasError, match="neither summary.json nor metrics.csv"):
        empty.last_scores()
    with pytest.raises(ModnasError, match="has no metrics.csv"):
        load_run(empty.path)
    with pytest.raises(ModnasError, match="config.yaml is missing"):
        empty.config()
    with pytest.raises(ModnasError, match="no finished epoch"):
        empty.checkpoint()
    assert "cannot use this run" in empty.checkpoint_problem()
    run.summary_file.unlink()
    run.metrics_file.write_text(run.metrics_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(ModnasError, match="truncated"):
        run.last_scores()
    with pytest.raises(ModnasError, match="truncated"):
        load_run(run.path)
    run.summary_file.write_text('{"devices": [')
    with pytest.raises(ModnasError, match="is damaged"):
        run.last_scores()


# -- runs written by older versions ---------------------------------------------------------------------------------


def _old_layout(run: RunDir) -> dict:
    """Rewrite ``run`` as modnas wrote runs before ``space``, the experimental section, the ``queries`` column
    and metadata.json existed; returns its flat config."""
    flat = run.config().model_dump(mode="json")
    experimental = flat.pop("experimental")
    del flat["space"]
    flat["error_predictor"]["pessimism"] = experimental.pop("pessimism")
    flat.update(experimental)
    run.config_file.write_text(yaml.safe_dump(flat, sort_keys=False))
    state = torch.load(run.checkpoint_file, weights_only=True)
    state["config"] = flat
    torch.save(state, run.checkpoint_file)
    lines = run.metrics_file.read_text().splitlines()
    run.metrics_file.write_text("\n".join(",".join(ln.split(",")[:6]) for ln in lines) + "\n")
    (run.path / "metadata.json").unlink(missing_ok=True)
    return flat


def test_a_run_in_the_older_layout_still_loads(run, caplog):
    new_config = run.config()
    scores = run.last_scores()
    data = run.epochs()
    flat = _old_layout(run)
    assert "experimental" not in yaml.safe_load(run.config_file.read_text())
    with caplog.at_level(logging.WARNING, logger="modnas"):
        assert run.config() == new_config  # upgraded, and quietly: the run's user cannot edit its file
        assert run.space() == "nb201"
        assert run.last_scores() == scores
        old = run.epochs()
    assert not caplog.records
    assert (old.hv, old.rays, old.complete_epochs) == (data.hv, data.rays, data.complete_epochs)
    assert run.checkpoint()["config"] == flat
    # without the queries column, the queries per epoch follow the config's schedule, capped by queries.csv
    assert all(r["queries"] is None for r in run.metric_rows())
    assert run.queries_per_epoch(new_config) == {1: 12, 2: 14, 3: 16}


def test_a_run_without_config_is_a_default_nb201_run(tmp_path):
    """Plots and evaluate read runs that predate config.yaml's devices: all 19 protocol devices of NB201."""
    from modnas.spaces.nb201.devices import PROTOCOL_DEVICES

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    rows = [{"epoch": 1, "device": d, "split": "train", "hv": 0.9, "igd_plus": 0.1, "n_front": 1, "queries": 5}
            for d in PROTOCOL_DEVICES]
    fronts = [{"epoch": 1, "device": d, "ray": 0, "preference": "1;0", "arch_str": index_to_string(5)}
              for d in PROTOCOL_DEVICES]
    run.write_epoch_files(rows, fronts)
    assert run.space() == "nb201" and run.evaluation_devices() == set(PROTOCOL_DEVICES)
    assert run.epochs().complete_epochs == [1] and len(run.last_scores()) == len(PROTOCOL_DEVICES)
    run.metrics_file.write_text("\n".join(run.metrics_file.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ModnasError, match="truncated"):
        run.last_scores()  # 18 of the 19 devices


# -- benchmark directories ------------------------------------------------------------------------------------------


def test_benchmark_directory_round_trip(tmp_path):
    from modnas.baselines.protocol import quick_protocol

    bench = BenchmarkDir(tmp_path / "bench").prepare()
    protocol = quick_protocol()
    results = [{"method": "random", "device": "fpga", "split": "test", "seed": 0, "budget": 20, "scope": "per device",
                "hv": 0.912345678, "igd_plus": None, "n_front": 3, "seconds": math.nan}]
    curves = [{"method": "random", "device": "fpga", "split": "test", "seed": 0, "budget": 5, "epoch": None,
               "hv": 0.8, "igd_plus": 0.1, "n_front": 2}]
    queries = [{"method": "random", "device": "fpga", "seed": 0, "budget": 20, "order": 1,
                "arch_str": index_to_string(3)}]
    result = BenchmarkResult(protocol, results, curves, queries, {}, 1.0, bench.path, ["runs/a"])
    bench.write_protocol(protocol)
    bench.write_tables(result)
    bench.write_summary({"settings": {"random K=20": {}}, "wall_seconds": 12.5, "modnas_runs": ["runs/a"],
                         "cpu_seconds": 20.0})
    bench.write_report("# report\n")
    assert "0.912346" in (bench.path / "results.csv").read_text()  # six significant digits
    back = load_benchmark(bench.path)
    assert back.protocol == protocol and back.out_dir == bench.path
    assert back.results[0]["hv"] == pytest.approx(0.912346) and back.results[0]["igd_plus"] is None
    assert math.isnan(back.results[0]["seconds"]) and back.results[0]["budget"] == 20
    assert back.curves[0]["epoch"] is None and back.queries == queries
    assert (back.seconds, back.cpu_seconds, back.modnas_runs) == (12.5, 20.0, ["runs/a"])
    assert back.settings == {"random K=20": {}}
    assert bench.modnas_run(2) == bench.path / "modnas" / "seed2"
    assert json.loads((bench.path / "summary.json").read_text())["wall_seconds"] == 12.5
