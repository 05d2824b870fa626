"""Three objectives (error, latency, energy): configuration checks and a short search on the energy devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modnas.config import load_config
from modnas.errors import ModnasError, UnknownDeviceError
from modnas.search import search
from modnas.search.benchmark import BenchmarkSearch
from modnas.search.trained import TrainedSearch
from modnas.spaces.nb201.devices import registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "three_objectives.yaml"
TINY = {
    "epochs": 2,
    "steps_per_epoch": 25,
    "query_budget": 40,
    "initial_queries": 20,
    "queries_per_round": 10,
    "preferences_per_device": 8,
    "pretrain_steps": 30,
    "error_predictor.ensemble": 1,
    "error_predictor.steps": 60,
}


def test_example_config_resolves_to_the_energy_devices():
    config = load_config(EXAMPLE)
    assert config.objectives == ("error", "latency", "energy")
    assert config.training_devices() == config.evaluation_devices() == ("eyeriss", "fpga")


def test_meta_hypernetwork_is_refused_with_three_objectives():
    with pytest.raises(ModnasError, match="use hypernet: mlp"):
        load_config(overrides={"objectives": "error,latency,energy", "hypernet": "meta"})


def test_unknown_objective_is_refused():
    with pytest.raises(ModnasError, match="objectives must be"):
        load_config(overrides={"objectives": "error,power"})


def test_devices_without_energy_are_refused():
    config = load_config(EXAMPLE, {"train_devices": "eyeriss,pixel3"})
    with pytest.raises(ModnasError, match="pixel3 has no energy data"):
        BenchmarkSearch(config)


def test_unknown_device_is_refused():
    with pytest.raises(UnknownDeviceError):
        BenchmarkSearch(load_config(overrides={"eval_devices": "fpga,not_a_device"}))


def test_short_three_objective_search_learns_and_its_front_reports_energy(tmp_path):
    config = load_config(EXAMPLE, TINY)
    untrained = BenchmarkSearch(config)
    assert len(untrained.eval_prefs) == 21 and untrained.eval_prefs.shape[1] == 3
    assert np.allclose(untrained.eval_prefs.sum(axis=1), 1.0)
    before, _ = untrained.evaluate()
    summary = search(config, tmp_path / "run")
    assert [r["device"] for r in summary["devices"]] == ["eyeriss", "fpga"]
    for old, new in zip(before, summary["devices"]):
        assert new["hv"] > old["hv"] + 0.1, (old, new)
    trained = TrainedSearch.load(tmp_path / "run")
    rows = trained.front(registry.get("fpga"), n_prefs=21)
    assert rows and all(len(r["preference"]) == 3 and r["energy_mJ"] > 0 for r in rows)
    choice = trained.choose(registry.get("eyeriss"), [0.2, 0.3, 0.5])
    assert choice["energy_mJ"] > 0
    with pytest.raises(ModnasError, match="expected 3"):
        trained.choose(registry.get("eyeriss"), [0.5, 0.5])


def test_predicted_argmins_with_energy_minimise_the_three_scalarised_objectives():
    import torch

    loop = BenchmarkSearch(load_config(EXAMPLE, {**TINY, "query_proposals": "hypernet+argmin"}))
    best = loop.predicted_argmins()
    assert best.shape == (2, len(loop.eval_prefs))
    with torch.no_grad():  # brute force for fpga (the second training device) and one preference
        err = (loop.error_model.error(loop.bound_onehots) - loop.err_low) / (loop.err_high - loop.err_low)
        lat = loop.predictor(loop.bound_onehots, loop.train_emb[1:2])[:, 0]
        energy = loop.energy[1](loop.bound_onehots)
    lat = (lat - loop.lat_low[1]) / (loop.lat_high[1] - loop.lat_low[1])
    low, high = loop.energy_bounds
    energy = (energy - low[1]) / (high[1] - low[1])
    r = loop.eval_prefs[7]
    objective = r[0] * err + r[1] * lat + r[2] * energy
    position = list(loop.bound_keys).index(best[1, 7])
    assert float(objective[position]) <= float(objective.min()) + 1e-5
    assert loop.query_round() == TINY["queries_per_round"]
