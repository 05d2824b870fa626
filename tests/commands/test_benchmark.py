"""``modnas benchmark``: a reduced protocol end to end, reusing MODNAS runs, and one-line errors (exit status 2)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from modnas.baselines.benchmark import modnas_rows
from modnas.commands.benchmark import benchmark_command
from modnas.config import load_config
from modnas.problem import get_problem
from modnas.rundir import RunDir

runner = CliRunner()
app = typer.Typer()
app.command()(benchmark_command)

FILES = ("protocol.yaml", "results.csv", "curves.csv", "queries.csv", "summary.json", "report.md",
         "hv_vs_budget.png", "hv_per_device.png", "fronts.png", "fronts/fpga.png", "fronts/pixel2.png")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> Path:
    """One ``--quick`` benchmark (2 devices, K = 20, a 2-step MODNAS search), shared by the tests below."""
    out = tmp_path_factory.mktemp("bench") / "quick"
    result = runner.invoke(app, ["--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_quick_run_writes_every_file(quick_run):
    for name in FILES:
        assert (quick_run / name).is_file(), name
    assert (quick_run / "modnas" / "seed0" / "summary.json").is_file()
    results = rows(quick_run / "results.csv")
    assert list(results[0]) == ["method", "device", "split", "seed", "budget", "scope", "hv", "igd_plus",
                                "n_front", "seconds"]
    baselines = [r for r in results if not r["method"].startswith("modnas")]
    # 4 baselines x 2 devices x 1 seed x 2 budget views (K = 20 and round(20 / 19) = 1)
    assert len(baselines) == 16 and {r["budget"] for r in baselines} == {"20", "1"}
    ours = [r for r in results if r["method"] == "modnas"]
    assert {r["device"] for r in ours} == {"fpga", "pixel2"} and {r["scope"] for r in ours} == {"all devices"}
    assert all(0.0 <= float(r["hv"]) <= 1.0 for r in results)
    # the ablation: the same run re-scored with predicted latency everywhere, one row per MODNAS row
    ablation = [r for r in results if r["method"] == "modnas-predicted-latency"]
    assert [(r["device"], r["seed"], r["budget"]) for r in ablation] == [(r["device"], r["seed"], r["budget"]) for r in ours]


def test_every_baseline_run_spent_its_budget_exactly(quick_run):
    queries = rows(quick_run / "queries.csv")
    runs: dict[tuple, list[str]] = {}
    for q in queries:
        runs.setdefault((q["method"], q["device"], q["seed"], q["budget"]), []).append(q["arch_str"])
    assert len(runs) == 16
    space = get_problem("nb201").space
    for (_, _, _, budget), archs in runs.items():
        assert len(archs) == len(set(archs)) == int(budget)
        assert all(space.canonical_key(a) == a for a in archs)  # canonical NB201 architecture strings


def test_hv_of_a_run_matches_its_curve_at_the_same_budget(quick_run):
    results = {(r["method"], r["device"]): float(r["hv"]) for r in rows(quick_run / "results.csv")
               if r["budget"] == "20" and not r["method"].startswith("modnas")}
    curves = {(r["method"], r["device"]): float(r["hv"]) for r in rows(quick_run / "curves.csv")
              if r["budget"] == "20" and not r["method"].startswith("modnas")}
    assert results == pytest.approx(curves)


def test_report_and_summary(quick_run):
    report = (quick_run / "report.md").read_text(encoding="utf-8")
    assert "## Same total budget" in report and "| fpga* |" in report and "modnas benchmark --quick" in report
    summary = json.loads((quick_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["same_total_budget"] == 1 and summary["budget"] == 20
    assert set(summary["views"]["per_device"]["wins"]) == {"random", "local", "morea", "nsga2"}
    assert set(summary["views"]["per_device"]["wins_predicted_latency"]) == {"random", "local", "morea", "nsga2"}
    assert "modnas-predicted-latency" in summary["views"]["per_device"]["hv"]
    assert "Where the latency comes from" in report and "`modnas-predicted-latency`" in report


def test_predicted_latency_rows_rechoose_the_front_by_the_predictor(quick_run):
    from modnas.baselines.benchmark import predicted_latency_rows
    from modnas.evaluation import evaluation_preferences, to_simplex
    from modnas.evaluation.scorer import score_keys
    from modnas.search.trained import TrainedSearch
    from modnas.spaces.nb201.devices import registry

    run = quick_run / "modnas" / "seed0"
    own = [{"method": "modnas", "device": "pixel3", "split": "train", "seed": 0, "budget": 20, "hv": 0.0}]
    (row,) = predicted_latency_rows(run, own)
    trained = TrainedSearch.load(run)
    trained.config = trained.config.model_copy(update={"front_latency": "predicted"})
    prefs = to_simplex(evaluation_preferences(2, trained.config.eval_rays))
    expected = score_keys(list(trained.architectures(registry.get("pixel3"), prefs)), "pixel3").hv
    assert row["method"] == "modnas-predicted-latency" and row["hv"] == pytest.approx(expected)
    # a run that already uses predicted latency has no ablation to add
    config = (run / "config.yaml").read_text(encoding="utf-8")
    copy = quick_run.parent / "predicted-run"
    import shutil

    shutil.copytree(run, copy)
    (copy / "config.yaml").write_text(config.replace("front_latency: measured", "front_latency: predicted"))
    assert "front_latency: predicted" in (copy / "config.yaml").read_text(encoding="utf-8")
    assert predicted_latency_rows(copy, own) == []


def test_reusing_modnas_runs(quick_run, tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text("methods: [modnas, random]\ndevices: [pixel2]\nbudget: 20\nworkers: 1\n")
    out = tmp_path / "reuse"
    result = runner.invoke(app, [str(protocol), "--out", str(out), "--json",
                                 "--modnas-runs", str(quick_run / "modnas" / "seed0")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["modnas_runs"] == [str(quick_run / "modnas" / "seed0")]
    assert not (out / "modnas").exists()  # nothing searched again
    before = {r["device"]: r["hv"] for r in rows(quick_run / "results.csv") if r["method"] == "modnas"}
    after = {r["device"]: r["hv"] for r in rows(out / "results.csv") if r["method"] == "modnas"}
    assert after == {"pixel2": before["pixel2"]}


def test_a_run_with_another_budget_is_refused(quick_run, tmp_path):
    protocol = tmp_path / "p.yaml"
    protocol.write_text("methods: [modnas, random]\ndevices: [pixel2]\nbudget: 30\nworkers: 1\n")
    result = runner.invoke(app, [str(protocol), "--out", str(tmp_path / "o"),
                                 "--modnas-runs", str(quick_run / "modnas" / "seed0")])
    assert result.exit_code == 2
    assert "query budget 20" in result.output and result.output.count("\n") == 1


def test_queries_per_epoch_without_the_metrics_column(quick_run, tmp_path):
    run = quick_run / "modnas" / "seed0"
    config = load_config(run / "config.yaml")
    with_column = RunDir(run).queries_per_epoch(config)
    assert with_column == {1: 20}
    copy = tmp_path / "old"
    copy.mkdir()
    for name in ("config.yaml", "fronts.csv", "queries.csv"):
        (copy / name).write_text((run / name).read_text())
    lines = (run / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "queries"]
    (copy / "metrics.csv").write_text("\n".join(",".join(ln.split(",")[i] for i in keep) for ln in lines) + "\n")
    assert RunDir(copy).queries_per_epoch(config) == {1: 20}
    results, curves = modnas_rows(copy, 20)
    assert len(results) == 19 and {r["budget"] for r in curves} == {20}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--quick", "PROTO"], "either a PROTOCOL"),
        (["PROTO"], "unknown method 'cmaes'"),
        (["--quick", "--workers", "0"], "--workers must be >= 1"),
        (["--quick", "--modnas-runs", "/no/such/run"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_with_status_2(tmp_path, args, message):
    proto = tmp_path / "p.yaml"
    proto.write_text("methods: [random, cmaes]\n")
    args = [str(proto) if a == "PROTO" else a for a in args]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and result.output.count("\n") == 1


def test_a_non_empty_out_directory_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    result = runner.invoke(app, ["--quick", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not empty" in result.output


def test_registered_in_the_main_cli():
    from modnas.cli import app as main_app

    assert "benchmark" in {c.name for c in main_app.registered_commands}


def test_a_finished_benchmark_reads_back(quick_run, tmp_path):
    from modnas.baselines import figures
    from modnas.rundir import load_benchmark

    result = load_benchmark(quick_run)
    assert len(result.results) == len(rows(quick_run / "results.csv"))
    assert result.modnas_runs and result.protocol.budget == 20
    assert all(isinstance(r["budget"], int) and isinstance(r["hv"], float) for r in result.results)
    result.out_dir = tmp_path
    assert figures.plot_hv_vs_budget(result, tmp_path / "hv.png").is_file()


def test_figures_redraw_for_any_device_subset(quick_run, tmp_path, monkeypatch):
    """Every figure function takes a protocol of any size; the fronts grid shows each device's best baseline."""
    from modnas.baselines import figures
    from modnas.rundir import load_benchmark

    result = load_benchmark(quick_run)
    picked: dict[tuple[str, int], str | None] = {}
    real = figures._best_baseline

    def spy(res, device, seed, budget):
        picked[(device, budget)] = real(res, device, seed, budget)
        return picked[(device, budget)]

    monkeypatch.setattr(figures, "_best_baseline", spy)
    for devices in (["fpga"], ["pixel2", "fpga"]):
        result.protocol = result.protocol.model_copy(update={"devices": devices})
        result.out_dir = tmp_path / str(len(devices))
        paths = figures.write_figures(result)
        names = {p.relative_to(result.out_dir).as_posix() for p in paths}
        expected = {"hv_vs_budget.png", "hv_per_device.png", "fronts.png"} | {f"fronts/{d}.png" for d in devices}
        assert names == expected
        assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)
    # the best baseline per device and budget is the one with the highest HV of the drawn seed
    hv = {(r["method"], r["device"], int(r["budget"])): float(r["hv"]) for r in rows(quick_run / "results.csv")
          if r["seed"] == "0" and r["method"] in ("random", "local", "morea", "nsga2")}
    for (device, budget), method in picked.items():
        best = max(v for (m, d, b), v in hv.items() if d == device and b == budget)
        assert hv[(method, device, budget)] == best
    assert {b for _, b in picked} == {1, 20}


def test_a_modnas_config_that_is_not_comparable_is_refused(tmp_path):
    from modnas.baselines.benchmark import check_inputs
    from modnas.baselines.protocol import make_protocol
    from modnas.errors import ModnasError

    proto = make_protocol({"methods": ["modnas"], "devices": ["fpga"], "budget": 20,
                           "modnas": {"overrides": {"objectives": "error,latency,energy", "hypernet": "mlp",
                                                    "initial_queries": 10}}})
    with pytest.raises(ModnasError):
        check_inputs(proto, tmp_path / "out")
    proto = make_protocol({"methods": ["modnas"], "budget": 20, "modnas": {"overrides": {"query_budget": 30}}})
    with pytest.raises(ModnasError, match="query_budget"):
        check_inputs(proto, tmp_path / "out")


def test_benchmark_and_its_modnas_runs_have_metadata(quick_run):
    top = json.loads((quick_run / "metadata.json").read_text())
    assert top["kind"] == "benchmark" and top["status"] == "complete"
    run = json.loads((quick_run / "modnas" / "seed0" / "metadata.json").read_text())
    assert run["kind"] == "search/benchmark" and run["seed"] == 0 and run["status"] == "complete"
