"""Using a finished run: zero-shot fronts for built-in and custom devices, export, and damaged runs."""

from __future__ import annotations

import json
import runpy

import pytest
import torch
from typer.testing import CliRunner

from modnas.cli import app
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search import search
from modnas.search.trained import TrainedSearch
from modnas.spaces.nb201 import build_network, count_parameters
from modnas.spaces.nb201.devices import NB201Devices, registry
from modnas.tables.nb201 import nb201_tables

runner = CliRunner()
TINY = {
    "epochs": 1, "steps_per_epoch": 10, "query_budget": 30, "initial_queries": 20, "queries_per_round": 5,
    "preferences_per_device": 4, "pretrain_steps": 20, "error_predictor.ensemble": 1, "error_predictor.steps": 30,
    "hypernet": "meta",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("runs") / "run"
        search(load_config(None, TINY), out)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="module")
def trained(run_dir):
    return TrainedSearch.load(run_dir)


def test_front_for_a_builtin_device(trained):
    rows = trained.front(registry.get("fpga"), n_prefs=12)
    assert 1 <= len(rows) <= 12
    assert len({r["arch_str"] for r in rows}) == len(rows)
    assert [r["predicted_error"] for r in rows] == sorted(r["predicted_error"] for r in rows)
    assert any(r["on_predicted_front"] for r in rows)
    for r in rows:
        assert r["true_latency_ms"] == pytest.approx(float(nb201_tables.latency("fpga", r["arch_index"])))
        assert r["predicted_latency_ms"] > 0


def test_front_for_a_custom_device_without_a_table(trained):
    fpga = registry.get("fpga")
    custom = NB201Devices().register("my_board", [2 * x for x in fpga.reference_latencies])
    rows = trained.front(custom, n_prefs=6)
    assert rows and all(r["true_latency_ms"] is None for r in rows)
    # same embedding as fpga, twice the latencies: same architectures, predicted ms scale with the device
    fpga_rows = {r["arch_str"]: r for r in trained.front(fpga, n_prefs=6)}
    for r in rows:
        assert r["predicted_latency_ms"] == pytest.approx(2 * fpga_rows[r["arch_str"]]["predicted_latency_ms"], rel=1e-4)


def test_front_of_a_noisy_custom_device_lists_positive_latencies(trained):
    """Reference timings of a busy machine (2.5 ms to 2.5 s) once gave the fast end of the front negative ms."""
    busy = [167.3, 2.5, 23.4, 17.1, 33.0, 30.2, 5.0, 47.6, 10.1, 2501.9]
    rows = trained.front(NB201Devices().register("busy_laptop", busy), n_prefs=24)
    assert rows and all(r["predicted_latency_ms"] > 0 for r in rows)


def test_a_custom_device_that_measured_the_queried_architectures(trained, run_dir):
    import numpy as np

    from modnas.evaluation import evaluation_preferences, to_simplex
    from modnas.search.benchmark import candidate_values, measured_architectures, prefer_measured
    from modnas.search.run import queried_architectures
    from modnas.spaces.nb201 import index_to_string, to_index
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES

    pixel2 = registry.get("pixel2")
    references = {index_to_string(i) for i in REFERENCE_ARCH_INDICES}
    queried = [a for a in queried_architectures(run_dir) if a not in references]
    assert len(queried) >= 20
    # what `modnas device measure --archs-from RUN` would record on a pixel2: its table latencies
    extras = {a: float(nb201_tables.latency("pixel2", int(to_index(a)))) for a in queried}
    custom = NB201Devices().register("pixel2_measured", list(pixel2.reference_latencies), extra_latencies=extras)
    rows = trained.front(custom, n_prefs=12)
    for r in rows:
        expected = extras.get(r["arch_str"])
        assert r["true_latency_ms"] == (pytest.approx(expected) if expected is not None else None)
    # the measured front compares the queried architectures by these measurements
    prefs = to_simplex(evaluation_preferences(2, 12))
    config = trained.config
    picks = trained.architectures(custom, prefs)
    hypernet_only = TrainedSearch(trained.run_dir, config.model_copy(update={"front": "hypernet"}), trained.hypernet,
                                  trained.error_model, trained.predictor, trained.problem,
                                  trained.budget).architectures(custom, prefs)
    measured, _ = measured_architectures(trained.budget, config.error_predictor.degenerate_error)
    args = (trained.error_model, trained.predictor, config.objectives, trained.problem, trained.budget, "measured")
    values = candidate_values(measured, custom, *args)
    known = {**dict(zip(map(index_to_string, REFERENCE_ARCH_INDICES), pixel2.reference_latencies)), **extras}
    assert np.allclose(values[:, 1], [known[k] for k in measured])
    expected = prefer_measured(prefs, hypernet_only, candidate_values(hypernet_only, custom, *args), measured, values)
    assert (picks == expected).all()


def test_choose_validates_the_preference(trained):
    device = registry.get("pixel2")
    assert trained.choose(device, [0.3, 0.7])["device"] == "pixel2"
    for bad in ([0.5, 0.6], [-0.1, 1.1], [1.0], [float("nan"), 1.0]):
        with pytest.raises(ModnasError):
            trained.choose(device, bad)


def test_export_writes_json_and_a_standalone_module(run_dir, tmp_path):
    out = tmp_path / "chosen"
    result = runner.invoke(app, ["export", str(run_dir), "--device", "fpga", "--preference", "0.3,0.7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    choice = json.loads((tmp_path / "chosen.json").read_text())
    module = runpy.run_path(str(tmp_path / "chosen.py"))
    assert module["ARCH_STR"] == choice["arch_str"]
    net = module["build"]()
    assert count_parameters(net) == count_parameters(build_network(choice["arch_str"]))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    again = runner.invoke(app, ["export", str(run_dir), "--device", "fpga", "--preference", "0.3,0.7", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_front_cli_json_and_profile(run_dir, tmp_path):
    result = runner.invoke(app, ["front", str(run_dir), "--device", "eyeriss", "--n-prefs", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) >= 1
    fpga = registry.get("fpga")
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES

    profile = {
        "name": "board",
        "latencies_ms": {nb201_tables.arch_strings[i]: v for i, v in zip(REFERENCE_ARCH_INDICES, fpga.reference_latencies)},
    }
    path = tmp_path / "board.json"
    path.write_text(json.dumps(profile))
    result = runner.invoke(app, ["front", str(run_dir), "--profile", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert all(r["true_latency_ms"] is None for r in json.loads(result.stdout))


@pytest.mark.parametrize("columns", ["80", "250"])
def test_front_tables_never_wrap_or_cut_architecture_strings(run_dir, tmp_path, monkeypatch, columns):
    """At 80 columns (and in a pipe) arch strings were folded into fragments; each must stay on one line."""
    monkeypatch.setenv("COLUMNS", columns)
    rows = json.loads(runner.invoke(app, ["front", str(run_dir), "--device", "fpga", "--json"]).stdout)
    result = runner.invoke(app, ["front", str(run_dir), "--device", "fpga"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout
    for row in rows:
        assert any(row["arch_str"] in line for line in lines), row["arch_str"]


def test_front_says_what_was_measured(run_dir, tmp_path, monkeypatch):
    """'(measured)' beside a '-' latency read as a latency measurement; it meant the search had read the error."""
    monkeypatch.setenv("COLUMNS", "250")
    fpga = registry.get("fpga")
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES

    refs = {nb201_tables.arch_strings[i]: v for i, v in zip(REFERENCE_ARCH_INDICES, fpga.reference_latencies)}
    path = tmp_path / "board.json"
    path.write_text(json.dumps({"name": "board", "latencies_ms": refs}))
    rows = json.loads(runner.invoke(app, ["front", str(run_dir), "--profile", str(path), "--json"]).stdout)
    assert any(r["measured"] for r in rows)  # the table below has something to explain
    out = runner.invoke(app, ["front", str(run_dir), "--profile", str(path)]).stdout
    assert "(measured)" not in out
    assert "error queried" in out and "the search read this architecture's true error" in out
    assert "measured latency ms" in out and "'-' where it was not" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--device", "nope"], "nope"),
        ([], "exactly one"),
        (["--device", "fpga", "--n-prefs", "0"], "n-prefs"),
    ],
)
def test_front_bad_input(run_dir, args, needle):
    result = runner.invoke(app, ["front", str(run_dir), *args])
    assert result.exit_code == 2 and needle in result.stderr


def test_export_bad_preference(run_dir, tmp_path):
    result = runner.invoke(
        app, ["export", str(run_dir), "--device", "fpga", "--preference", "0.3,0.3", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "sum to 1" in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_export_to_an_unwritable_place_is_one_line(run_dir, tmp_path, monkeypatch):
    import errno
    import tempfile

    (tmp_path / "plain_file").write_text("")
    out = tmp_path / "plain_file" / "sub" / "arch"
    result = runner.invoke(app, ["export", str(run_dir), "--device", "fpga", "--preference", "0.5,0.5", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "plain_file" in result.stderr
    # a read-only folder (root may write anywhere, so the refusal is simulated)
    read_only = tmp_path / "read_only"
    read_only.mkdir()

    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    args = ["export", str(run_dir), "--device", "fpga", "--preference", "0.5,0.5", "--out", str(read_only / "arch")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cannot write export" in result.stderr
    assert "Permission denied" in result.stderr and not list(read_only.iterdir())


def test_missing_and_damaged_runs(run_dir, tmp_path):
    with pytest.raises(ModnasError, match="does not exist"):
        TrainedSearch.load(tmp_path / "nothing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModnasError, match="config.yaml is missing"):
        TrainedSearch.load(empty)
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (broken / "checkpoints" / "last.pt").write_bytes((run_dir / "checkpoints" / "last.pt").read_bytes()[:500])
    with pytest.raises(ModnasError, match="last.pt"):
        TrainedSearch.load(broken)


def test_pick_the_most_accurate_architecture_under_a_latency_limit(trained):
    fpga = registry.get("fpga")
    rows = trained.front(fpga, n_prefs=12)
    latencies = sorted(r["predicted_latency_ms"] for r in rows)
    limit = latencies[len(latencies) // 2]
    choice = trained.pick(fpga, max_latency_ms=limit, n_prefs=12)
    feasible = [r for r in rows if r["predicted_latency_ms"] <= limit]
    assert choice["arch_str"] == min(feasible, key=lambda r: r["predicted_error"])["arch_str"]
    assert choice["selection"]["satisfied"] and choice["device"] == "fpga"
    # judged by the table values instead
    known = trained.pick(fpga, max_latency_ms=limit, n_prefs=12, basis="known")
    feasible = [r for r in rows if r["true_latency_ms"] <= limit]
    assert known["arch_str"] == min(feasible, key=lambda r: r["true_error"])["arch_str"]
    assert known["latency_basis"] == "known"


def test_pick_with_no_architecture_under_the_limit_returns_the_closest(trained):
    fpga = registry.get("fpga")
    rows = trained.front(fpga, n_prefs=12)
    fastest = min(rows, key=lambda r: r["predicted_latency_ms"])
    choice = trained.pick(fpga, max_latency_ms=fastest["predicted_latency_ms"] / 2, n_prefs=12)
    assert choice["arch_str"] == fastest["arch_str"]
    assert not choice["selection"]["satisfied"]
    assert choice["selection"]["violation"] == pytest.approx(1.0)
    assert choice["selection"]["note"].startswith("no architecture")


def test_pick_for_a_custom_device_zero_shot_and_energy_limits(trained):
    from modnas.evaluation.selection import knee_index
    from modnas.spaces.nb201.energy import energy_model

    fpga = registry.get("fpga")
    custom = NB201Devices().register("my_board", [2 * x for x in fpga.reference_latencies])
    rows = trained.front(custom, n_prefs=12)
    knee = trained.pick(custom, rule="knee", n_prefs=12)
    points = [[r["predicted_error"], r["predicted_latency_ms"]] for r in rows]
    assert knee["arch_str"] == rows[knee_index(points)]["arch_str"]
    assert knee["latency_basis"] == "predicted" and knee["true_latency_ms"] is None
    # energy is not an objective of this run, but eyeriss has an exact energy model
    eyeriss = registry.get("eyeriss")
    choice = trained.pick(eyeriss, max_energy_mj=1.5, n_prefs=12)
    assert choice["energy_mJ"] == pytest.approx(float(energy_model("eyeriss").predict(
        nb201_tables.ops_codes[[choice["arch_index"]]])[0]))
    with pytest.raises(ModnasError, match="energy"):
        trained.pick(custom, max_energy_mj=1.0)
    with pytest.raises(ModnasError, match="basis"):
        trained.pick(fpga, max_latency_ms=1.0, basis="true")


def test_front_cli_picks_under_a_limit_and_explains_a_miss(run_dir, tmp_path):
    result = runner.invoke(app, ["front", str(run_dir), "--device", "pixel3", "--max-latency-ms", "1e-3", "--json"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)
    assert not choice["selection"]["satisfied"] and choice["device"] == "pixel3"
    table = runner.invoke(app, ["front", str(run_dir), "--device", "pixel3", "--max-latency-ms", "1e-3"])
    assert table.exit_code == 0
    assert f"picked {choice['arch_str']}" in table.stdout and "no architecture of the" in table.stdout
    knee = runner.invoke(app, ["front", str(run_dir), "--device", "pixel3", "--pick", "knee", "--json"])
    assert json.loads(knee.stdout)["selection"]["rule"] == "knee"


def test_export_by_limit(run_dir, tmp_path):
    out = tmp_path / "fast"
    args = ["export", str(run_dir), "--device", "fpga", "--min-accuracy", "80", "--max-latency-ms", "1e6"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    choice = json.loads((tmp_path / "fast.json").read_text())
    assert choice["selection"]["satisfied"] and "most accurate" in result.stderr
    best = min(TrainedSearch.load(run_dir).front(registry.get("fpga")), key=lambda r: r["predicted_error"])
    assert choice["arch_str"] == best["arch_str"]
    assert runpy.run_path(str(tmp_path / "fast.py"))["ARCH_STR"] == choice["arch_str"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "give --preference, or limits"),
        (["--preference", "0.5,0.5", "--pick", "knee"], "give one of them"),
        (["--max-latency-ms", "-2"], "max-latency-ms"),
        (["--pick", "best"], "unknown pick rule"),
        (["--min-accuracy", "150"], "min-accuracy"),
    ],
)
def test_export_selection_bad_input(run_dir, tmp_path, args, needle):
    result = runner.invoke(app, ["export", str(run_dir), "--device", "fpga", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and needle in result.stderr
    assert not (tmp_path / "x.json").exists()


def test_export_onnx_and_pt2_with_the_weights_of_modnas_train(run_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from modnas.export import build_for_export, load_weights
    from modnas.train import TrainSettings, train_architecture

    args = ["export", str(run_dir), "--device", "fpga", "--pick", "knee", "--out", str(tmp_path / "net")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    arch = json.loads((tmp_path / "net.json").read_text())["arch_str"]
    settings = TrainSettings(dataset="digits", epochs=1, C=4, N=1, batch_size=32, train_limit=64, device="cpu")
    train_architecture(arch, settings, tmp_path / "trained")
    weights = tmp_path / "trained" / "checkpoint.pt"
    result = runner.invoke(app, [*args, "--format", "onnx", "--format", "pt2", "--weights", str(weights), "--force"])
    assert result.exit_code == 0, result.output
    spec, state = load_weights(weights, arch)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = build_for_export(spec, state)(x)
    (logits,) = ort.InferenceSession(str(tmp_path / "net.onnx")).run(None, {"input": x.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.export.load(str(tmp_path / "net.pt2")).module()(x).detach(), expected)
    # a checkpoint of another architecture: one line, nothing written
    other_arch = next(a for a in nb201_tables.arch_strings if a != arch)
    torch.save({"arch_str": other_arch, "model": {}}, tmp_path / "other.pt")
    other = runner.invoke(app, [*args[:-1], str(tmp_path / "other"), "--format", "onnx",
                                "--weights", str(tmp_path / "other.pt")])
    assert other.exit_code == 2 and "holds the weights of" in other.stderr
    assert not (tmp_path / "other.json").exists() and not (tmp_path / "other.onnx").exists()


def test_front_cli_pick_for_a_profile_device(run_dir, tmp_path):
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES

    pixel2 = registry.get("pixel2")
    profile = {
        "name": "phone",
        "latencies_ms": {nb201_tables.arch_strings[i]: v for i, v in zip(REFERENCE_ARCH_INDICES, pixel2.reference_latencies)},
    }
    path = tmp_path / "phone.json"
    path.write_text(json.dumps(profile))
    rows = json.loads(runner.invoke(app, ["front", str(run_dir), "--profile", str(path), "--json"]).stdout)
    limit = sorted(r["predicted_latency_ms"] for r in rows)[1]
    result = runner.invoke(app, ["front", str(run_dir), "--profile", str(path), "--max-latency-ms", str(limit), "--json"])
    assert result.exit_code == 0, result.output
    choice = json.loads(result.stdout)
    feasible = [r for r in rows if r["predicted_latency_ms"] <= limit]
    assert choice["device"] == "phone" and choice["selection"]["satisfied"]
    assert choice["arch_str"] == min(feasible, key=lambda r: r["predicted_error"])["arch_str"]


def test_a_search_with_its_own_hardware_predictor(tmp_path, monkeypatch):
    """`hardware_predictor`: the search and the finished run's front both use the given checkpoint, stored with an
    absolute path; a missing checkpoint is one line."""
    from modnas.hardware.predictor import MetaPredictor, PredictorConfig, save_predictor
    from modnas.problem import get_problem

    torch.manual_seed(0)
    own = MetaPredictor(PredictorConfig(gcn_hidden=8, flat_hidden=8, head_hidden=8, device_hidden=8))
    save_predictor(own, tmp_path / "own.pt")
    monkeypatch.chdir(tmp_path)
    config = load_config(None, {**TINY, "hardware_predictor": "own.pt"})
    assert config.hardware_predictor == str(tmp_path / "own.pt")
    search(config, tmp_path / "run")
    monkeypatch.chdir("/")
    loaded = TrainedSearch.load(tmp_path / "run")
    default = get_problem("nb201").predictor
    assert isinstance(loaded.predictor, MetaPredictor) and loaded.predictor.config.gcn_hidden == 8
    assert loaded.predictor is not default and not any(p.requires_grad for p in loaded.predictor.parameters())
    onehot = torch.nn.functional.one_hot(torch.zeros(2, 6, dtype=torch.long), 5).float()
    emb = torch.zeros(1, 10)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predictor(onehot, emb), own.eval()(onehot, emb))
    (tmp_path / "own.pt").unlink()
    with pytest.raises(ModnasError, match="does not exist"):
        TrainedSearch.load(tmp_path / "run")
    result = runner.invoke(app, ["search", "--out", str(tmp_path / "other"), "--set", "hardware_predictor=gone.pt"])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "other").exists()  # refused before anything was written
