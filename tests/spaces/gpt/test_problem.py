"""The GPT problems: gpt-s (benchmark mode on the perplexity surrogate and measured tables) and gpt-tiny."""

from __future__ import annotations

import numpy as np
import pytest

from modnas.errors import ModnasError
from modnas.problem import get_problem
from modnas.spaces.gpt.hardware import load_table, shipped_devices
from modnas.spaces.gpt.surrogates import predict_perplexity


def test_gpt_s_truth_devices_and_reference():
    problem = get_problem("gpt-s")
    space = problem.space
    keys = space.keys(space.sample(8, np.random.default_rng(0)))
    archs = [space._arch_of(k) for k in keys]
    train, evaluation = problem.default_devices(("error", "latency"))
    assert set(train) < set(evaluation) and set(evaluation) == set(shipped_devices("gpt-s"))
    assert {problem.devices.get(d).split for d in evaluation} == {"train", "test"}
    device = evaluation[0]
    values = problem.truth.evaluate(keys, device, ("error", "latency"))
    assert np.allclose(values[:, 0], predict_perplexity(archs))
    assert np.allclose(values[:, 1], load_table(device).predict(archs))
    norm = problem.reference.normalisation(device, ("error", "latency"))
    assert not norm.exact and 0 < norm.true_hv < 1
    assert (norm.lower < norm.upper).all()
    dev = problem.devices.get(device)
    assert np.allclose(dev.reference_latencies, load_table(device).predict(
        [space._arch_of(k) for k in space.reference_architectures()]))


def test_gpt_s_energy_is_an_exact_model_on_gpu_settings():
    problem = get_problem("gpt-s")
    gpus = [d for d in shipped_devices("gpt-s") if problem.devices.get(d).energy_metric]
    assert gpus, "the H200 tables carry NVML energy"
    space = problem.space
    idx = space.sample(4, np.random.default_rng(1))
    model = problem.exact_model("energy", gpus[0])
    expected = problem.truth.evaluate(space.keys(idx), gpus[0], ("energy",))[:, 0]
    assert np.allclose(model.predict(idx), expected)
    cpu = next(d for d in shipped_devices("gpt-s") if not problem.devices.get(d).energy_metric)
    assert not problem.truth.supports("energy", cpu)


def test_gpt_tiny_has_no_perplexity_truth_but_latency_bounds():
    problem = get_problem("gpt-tiny")
    key = problem.space.extremes()[0]
    assert np.isnan(problem.truth.evaluate([key], None, ("error",))).all()  # unknown: only the supernet rates it
    with pytest.raises(ModnasError, match="one-shot mode only") as info:
        problem.require_quality_truth("benchmark mode")
    assert "\n" not in str(info.value)
    device = problem.devices.names("train")[0]
    norm = problem.reference.normalisation(device, ("error", "latency"))
    assert norm.lower[0] == 0 and norm.upper[0] == 1 and norm.lower[1] < norm.upper[1]
    with pytest.raises(ModnasError, match="scored by"):
        problem.reference.normalisation(device, ("error", "latency", "energy"))


def test_details_of_one_architecture():
    info = get_problem("gpt-s").truth.details(get_problem("gpt-s").space.extremes()[1])
    assert info["params_m"] == pytest.approx(124.5, abs=0.1)
    assert 20 < info["predicted_perplexity"] < 22
    assert set(info["latency_ms"]) == set(shipped_devices("gpt-s"))


def test_a_short_benchmark_mode_search_on_gpt_s_with_its_defaults(tmp_path):
    """GPT-S's own defaults (Chebyshev, refinement, the Gaussian-process error model) run end to end, and the run
    loads back with the same error model for `modnas front`."""
    import json

    from typer.testing import CliRunner

    from modnas.cli import app
    from modnas.search.error_model import GaussianProcessMember
    from modnas.search.trained import TrainedSearch

    out = tmp_path / "run"
    args = ["search", "--space", "gpt-s", "--out", str(out), "--json", "--epochs", "1",
            "--set", "steps_per_epoch=2", "--set", "query_budget=30", "--set", "initial_queries=20",
            "--set", "eval_rays=4", "--set", "pretrain_steps=3", "--set", "error_predictor.steps=20",
            "--set", "refine_rounds=2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["devices"]) == 8 and all(0 <= d["hv"] <= 1 for d in summary["devices"])
    trained = TrainedSearch.load(out)
    assert trained.config.error_predictor.kind == "gp" and trained.config.scalarisation == "chebyshev"
    assert isinstance(trained.error_model.members[0], GaussianProcessMember)
    assert trained.error_model.members[0].train_x.shape[0] == 30  # fitted on every query
    front = CliRunner().invoke(app, ["front", str(out), "--device", "h200-b64-s1024-fp32", "--json"])
    assert front.exit_code == 0, front.output
    assert all(r["arch_str"].startswith("gpt-s-") for r in json.loads(front.stdout))
    # --refine-rounds 0: the hypernetwork's own picks (with measured ones swapped in), as the run's config would give
    plain = CliRunner().invoke(app, ["front", str(out), "--device", "h200-b64-s1024-fp32", "--json",
                                     "--refine-rounds", "0"])  # fmt: skip
    assert plain.exit_code == 0, plain.output
    trained.config = trained.config.model_copy(update={"refine_rounds": 0})
    expected = [r["arch_str"] for r in trained.front(trained.device("h200-b64-s1024-fp32"))]
    assert [r["arch_str"] for r in json.loads(plain.stdout)] == expected
    bad = CliRunner().invoke(app, ["front", str(out), "--device", "h200-b64-s1024-fp32", "--refine-rounds", "-1"])
    assert bad.exit_code == 2
