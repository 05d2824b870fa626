"""A second, conditional and ragged space runs end to end through modnas without any edit of modnas: the proof
that a new space is a folder (here: tests/toy_problem.py), not an edit of the loop."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import toy_problem
from modnas.cli import app
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.evaluation.scorer import score_keys, true_front
from modnas.problem import get_problem, register_problem
from modnas.search import resume_search, search

runner = CliRunner()

TINY = {
    "space": "toy",
    "epochs": 3,
    "steps_per_epoch": 5,
    "query_budget": 20,
    "initial_queries": 10,
    "queries_per_round": 3,
    "preferences_per_device": 4,
    "pretrain_steps": 10,
    "eval_rays": 6,
    "error_predictor.ensemble": 1,
    "error_predictor.steps": 30,
    "seed": 1,
}


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
    register_problem("toy", "toy_problem:make_problem")
    yield


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    summary = search(load_config(None, TINY), out)
    return out, summary


def test_space_gates_and_canonical_keys():
    space = toy_problem.ToySpace()
    a = space.parse("depth=1;width1=16;width2=32;kernel=5")  # width2 is inactive at depth 1: ignored
    b = space.parse("kernel=5;depth=1;width1=16")
    assert np.array_equal(a, b)
    assert space.to_key(a) == "depth=1;width1=16;kernel=5"
    assert len(space.enumerate()) == 42
    assert len({space.to_key(r) for r in space.enumerate()}) == 42
    for bad, needle in [
        ("depth=2;width1=16;kernel=5", "'width2' is missing"),
        ("depth=4;width1=16;kernel=5", "unknown option"),
        ("depth=1;depth=2", "given twice"),
        ("shape=1", "bad part"),
    ]:
        with pytest.raises(ModnasError, match=needle):
            space.parse(bad)


def test_sampling_and_neighbours_respect_gates_and_padding():
    space = toy_problem.ToySpace()
    rng = np.random.default_rng(0)
    archs = space.sample(500, rng)
    assert (archs[:, 3] < 2).all()  # the padding option of kernel is never drawn
    assert (archs[archs[:, 0] == 0][:, 2] == 0).all()  # inactive width2 is canonical
    near = space.neighbours(space.parse("depth=1;width1=16;kernel=5"))
    keys = set(space.keys(near))
    assert "depth=1;width1=16;kernel=3" in keys and "depth=2;width1=16;width2=8;kernel=5" in keys
    assert len(keys) == len(near) == 2 + 2 + 1  # depth (2), width1 (2), kernel (1); width2 inactive


def test_masked_options_get_no_mass_no_argmax_no_gradient():
    space = toy_problem.ToySpace()
    logits = torch.zeros(2, space.num_decisions, space.max_options, requires_grad=True)
    with torch.no_grad():
        big = logits.clone()
        big[..., 3, 2] = 100.0  # the padding column of kernel is the largest logit
    masked = space.mask_logits(big.requires_grad_(True))
    assert (space.from_logits(masked)[:, 3] < 2).all()
    torch.softmax(masked, -1)[..., 3, 2].sum().backward()
    assert big.grad[..., 3, 2].abs().sum() == 0


def test_gated_features_ignore_inactive_decisions():
    space = toy_problem.ToySpace()
    a = space.to_onehot(np.array([[0, 1, 0, 1]]))
    b = space.to_onehot(np.array([[0, 1, 2, 1]]))  # differs only in the inactive width2
    assert torch.equal(space.features(a), space.features(b))


def test_scorer_and_reference_front():
    problem = get_problem("toy")
    front = true_front("toy_cpu", ("error", "latency"), problem)
    s = score_keys(list(front.arch_strs), "toy_cpu", ("error", "latency"), problem)
    assert s.hv == pytest.approx(front.hv) and s.n_on_true_front == len(front.arch_strs)
    worst = score_keys(["depth=1;width1=8;kernel=3"], "toy_cpu", ("error", "latency"), problem)
    assert 0 <= worst.hv < s.hv


def test_search_runs_on_the_toy_space(toy_run):
    out, summary = toy_run
    assert {r["device"] for r in summary["devices"]} == {"toy_cpu", "toy_gpu", "toy_npu"}
    assert all(0 < r["hv"] <= 1 for r in summary["devices"])
    assert "space: toy" in (out / "config.yaml").read_text()
    queries = (out / "queries.csv").read_text().splitlines()
    assert len(queries) - 1 <= TINY["query_budget"] and "depth=" in queries[1]


class _Stop(Exception):
    pass


def test_resume_of_a_toy_run_ends_where_a_straight_run_does(tmp_path, toy_run):
    out, summary = toy_run

    def stop_in_epoch_two(done: int, total: int, hv: float | None) -> None:
        if done >= TINY["steps_per_epoch"] + 2:
            raise _Stop

    with pytest.raises(_Stop):
        search(load_config(None, TINY), tmp_path / "cut", progress=stop_in_epoch_two)
    resumed = resume_search(tmp_path / "cut")
    assert resumed["devices"] == summary["devices"]
    assert (tmp_path / "cut" / "fronts.csv").read_text() == (out / "fronts.csv").read_text()


def test_cli_front_export_evaluate_plot_on_the_toy_space(toy_run, tmp_path):
    out, summary = toy_run
    res = runner.invoke(app, ["evaluate", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert {r["device"] for r in json.loads(res.output)} == {"toy_cpu", "toy_gpu", "toy_npu"}
    res = runner.invoke(app, ["front", str(out), "--device", "toy_npu", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert rows and all("depth=" in r["arch_str"] and r["true_latency_ms"] > 0 for r in rows)
    res = runner.invoke(app, ["front", str(out), "--device", "pixel2"])
    assert res.exit_code == 2 and "unknown device" in res.output
    res = runner.invoke(
        app, ["export", str(out), "--device", "toy_npu", "--preference", "0.5,0.5", "--out", str(tmp_path / "arch")]
    )
    assert res.exit_code == 0, res.output
    exported = json.loads((tmp_path / "arch.json").read_text())
    assert exported["space"] == "toy" and exported["arch_str"].startswith("depth=")
    namespace: dict = {}
    exec((tmp_path / "arch.py").read_text(), namespace)  # the standalone module builds without modnas
    assert namespace["build"]()(torch.zeros(2, 3, 16)).shape == (2, 10)
    res = runner.invoke(app, ["plot", str(out), "--out", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plots" / "fronts" / "toy_npu.png").is_file()


def test_three_objectives_on_two_devices(tmp_path):
    config = load_config(
        None,
        {**TINY, "objectives": "error,latency,memory", "hypernet": "mlp", "train_devices": "toy_cpu,toy_gpu",
         "eval_devices": "toy_cpu,toy_gpu", "epochs": 2},
    )
    summary = search(config, tmp_path / "run3")
    assert [r["device"] for r in summary["devices"]] == ["toy_cpu", "toy_gpu"]
    res = runner.invoke(app, ["evaluate", str(tmp_path / "run3"), "--json"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["plot", str(tmp_path / "run3"), "--out", str(tmp_path / "p3")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("method", ["local", "morea", "nsga2", "motpe"])
def test_baselines_search_the_toy_space_through_its_decisions(method):
    from modnas.baselines.methods import run_baseline

    problem = get_problem("toy")
    result = run_baseline(method, "toy_gpu", 15, seed=2, problem=problem)
    assert len(result.queried) == len(set(result.queried)) == 15
    space = problem.space
    assert all(space.canonical_key(k) == k for k in result.queried)  # canonical: inactive width2 never spelled out
    s = score_keys(list(result.queried), "toy_gpu", ("error", "latency"), problem)
    assert 0 < s.hv <= true_front("toy_gpu", ("error", "latency"), problem).hv + 1e-12
    with pytest.raises(ModnasError, match="budget"):
        run_baseline(method, "toy_gpu", 43, problem=problem)  # more than the 42 architectures


# -- devices, profiles and the hardware predictor of another space -------------------------------------------------


@pytest.fixture
def toy_devices():
    devices = get_problem("toy").devices
    yield devices
    devices._custom.clear()
    devices._unavailable.clear()
    devices._loaded_roots.clear()


def _toy_latencies(device: str, keys: list[str]) -> dict[str, float]:
    truth = get_problem("toy").truth
    return dict(zip(keys, truth.evaluate(keys, device, ("latency",))[:, 0].tolist()))


def test_toy_profiles_record_their_space_and_load_only_into_it(toy_devices):
    from modnas.errors import UnknownDeviceError
    from modnas.hardware.profiles import DeviceProfile, ProfileStore
    from modnas.spaces.nb201.devices import nb201_devices

    refs = list(toy_devices.reference_keys)
    profile = DeviceProfile(name="toy_board", space="toy", latencies_ms=_toy_latencies("toy_npu", refs))
    assert len(profile.embedding) == len(refs) == 6 and profile.embedding_fit is None
    store = ProfileStore()
    store.add(profile)
    assert json.loads(store.path("toy_board").read_text())["space"] == "toy"
    board = toy_devices.get("toy_board")  # loads the store
    assert board.space == "toy" and board.split == "custom"
    np.testing.assert_allclose(board.embedding, toy_devices.get("toy_npu").embedding, atol=1e-6)
    with pytest.raises(UnknownDeviceError):
        nb201_devices().get("toy_board")  # a toy profile is no NB201 device
    # an NB201 architecture string is not a toy architecture
    with pytest.raises(ModnasError):
        DeviceProfile(name="wrong", space="toy", latencies_ms={"|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 1.0})


def test_toy_device_embedding_fitted_from_other_architectures(toy_devices):
    from scipy.stats import spearmanr

    problem = get_problem("toy")
    keys = problem.space.keys(problem.space.enumerate())
    others = [k for k in keys if k not in toy_devices.reference_keys]
    measured = _toy_latencies("toy_npu", others[::3])  # 12 architectures, none of them a reference
    assert len(measured) >= toy_devices.min_measurements
    device = toy_devices.scratch().register("fitted_npu", measured)
    assert not device.references_measured and device.space == "toy"
    true = problem.truth.evaluate(keys, "toy_npu", ("latency",))[:, 0]
    onehot = problem.space.to_onehot(problem.space.enumerate())

    def rho(embedding: np.ndarray) -> float:
        predicted = problem.predictor(onehot, torch.tensor(embedding, dtype=torch.float32)[None])[:, 0]
        return float(spearmanr(predicted.detach().numpy(), true)[0])

    from_references = rho(toy_devices.get("toy_npu").embedding)
    assert rho(device.embedding) >= from_references - 0.05, (rho(device.embedding), from_references)
    with pytest.raises(ModnasError, match="at least 6"):
        toy_devices.scratch().register("too_few", dict(list(measured.items())[:5]))


def test_metapredictor_trains_on_a_space_without_a_cell_graph(tmp_path):
    from modnas.hardware.predictor import PredictorConfig, load_predictor, save_predictor
    from modnas.hardware.training import TrainConfig, evaluate_predictor, train_predictor

    problem = get_problem("toy")
    data = problem.latency_data()
    config = PredictorConfig(space="toy", embedding_dim=6, device_hidden=8, head_hidden=16, flat_hidden=16)
    model = train_predictor(data, TrainConfig(steps=40, batch_size=16), config)
    assert not model.use_graph and len(model.gcn) == 0
    assert set(model.config.to_dict()) >= {"space"} and model.config.space == "toy"
    rows = evaluate_predictor(model, data, ["toy_cpu", "toy_npu"], shots=(), seeds=1)
    assert [r.split for r in rows] == ["train", "test"] and all(np.isfinite(r.spearman) for r in rows)
    save_predictor(model, tmp_path / "toy.pt")
    _, meta = load_predictor(tmp_path / "toy.pt", space="toy")
    assert meta["space"] == "toy"
    with pytest.raises(ModnasError, match="for search space 'toy', not 'nb201'"):
        load_predictor(tmp_path / "toy.pt")
    with pytest.raises(ModnasError, match="test device"):
        train_predictor(data, TrainConfig(steps=1, devices=("toy_npu",)), config)


def test_benchmark_runs_on_the_toy_space(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["benchmark", "--quick", "--space", "toy", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["protocol"]["space"] == "toy" and summary["protocol"]["devices"] == ["toy_npu"]
    rows = (out / "results.csv").read_text().splitlines()
    assert any(r.startswith("modnas,toy_npu") for r in rows) and any(r.startswith("nsga2,toy_npu") for r in rows)
    assert "toy" in (out / "report.md").read_text().splitlines()[0]
    # a protocol naming a device of another space is refused in one line
    bad = CliRunner().invoke(app, ["benchmark", "--space", "toy", "--out", str(tmp_path / "b2"), str(_protocol(tmp_path))])
    assert bad.exit_code == 2 and "unknown device 'fpga'" in bad.output


def _protocol(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("devices: [fpga]\n")
    return path


def test_a_stored_reference_scores_like_the_enumerated_one(tmp_path):
    import dataclasses

    from modnas.problem import StoredReference, write_reference

    problem = get_problem("toy")
    path = tmp_path / "reference.json"
    pairs = [("toy_npu", ("error", "latency")), ("toy_cpu", ("error", "latency"))]
    write_reference(problem.reference, "toy", pairs, path, "python make_reference.py --budget 50000")
    stored = StoredReference(path)
    assert stored.devices() == ("toy_npu", "toy_cpu")
    assert stored.provenance["command"] == "python make_reference.py --budget 50000"
    twin = dataclasses.replace(problem, name="toy_stored", reference=stored)
    keys = problem.space.keys(problem.space.sample(12, np.random.default_rng(3)))
    enumerated, from_file = score_keys(keys, "toy_npu", problem=problem), score_keys(keys, "toy_npu", problem=twin)
    assert from_file.hv == enumerated.hv and from_file.igd_plus == enumerated.igd_plus
    norm = stored.normalisation("toy_npu", ("error", "latency"))
    assert not norm.exact and norm.true_hv == problem.reference.normalisation("toy_npu", ("error", "latency")).true_hv
    with pytest.raises(ModnasError, match="toy_gpu.*regenerate it with `python make_reference.py"):
        stored.normalisation("toy_gpu", ("error", "latency"))
    path.write_text('{"format": "something else"}')
    with pytest.raises(ModnasError, match="not a modnas-reference file"):
        StoredReference(path)
