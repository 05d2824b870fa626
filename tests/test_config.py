"""SearchConfig: defaults, YAML, overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from modnas.config import ONESHOT_PRESETS, SearchConfig, load_config
from modnas.errors import ModnasError


def test_defaults_and_round_trip(tmp_path):
    cfg = load_config()
    assert cfg.mode == "benchmark" and cfg.query_budget == 200 and cfg.eval_rays == 24
    assert cfg.objectives == ("error", "latency")
    path = tmp_path / "c.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nepochs: 7\nerror_predictor:\n  steps: 11\n")
    cfg = load_config(path, {"epochs": 2, "hypernet": None, "error_predictor.ensemble": 1})
    assert (cfg.seed, cfg.epochs, cfg.hypernet) == (3, 2, "meta")  # None means "not given": the default stays
    assert cfg.error_predictor.steps == 11 and cfg.error_predictor.ensemble == 1


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ("epochz: 3\n", {}, "unknown config key 'epochz'"),
        ("error_predictor:\n  stepz: 3\n", {}, "error_predictor.stepz"),
        ("", {"epochs": 0}, "config epochs"),
        ("", {"hypernet": "resnet"}, "config hypernet"),
        ("", {"aggregation": "max"}, "config aggregation"),
        ("", {"mode": "darts"}, "config mode"),
        ("", {"query_budget": 10, "initial_queries": 20}, "exceeds query_budget"),
        ("", {"objectives": "error,energy"}, "objectives"),
        ("[1, 2]\n", {}, "mapping"),
        ("a: [\n", {}, "not valid YAML"),
        ("epochs: true\n", {}, "config epochs: Input should be a valid integer"),
        ("error_predictor:\n  steps: false\n", {}, "config error_predictor.steps: Input should be a valid integer"),
        ("oneshot:\n  C: true\n", {}, "config oneshot.C"),
    ],
)
def test_bad_configs_raise_one_line(tmp_path, text, overrides, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ModnasError, match=match) as info:
        load_config(path, overrides)
    assert "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ModnasError, match="does not exist"):
        load_config("/nonexistent/c.yaml")


def test_assignment_is_validated():
    cfg = SearchConfig()
    with pytest.raises(ValueError):
        cfg.epochs = -1


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    config = load_config(path)
    assert config.mode in ("benchmark", "oneshot")
    if config.mode == "oneshot":
        resolved = config.oneshot.resolved()  # the dataset's preset fills every field the file leaves out
        assert all(value is not None for key, value in resolved.items() if key in ONESHOT_PRESETS[resolved["dataset"]])


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"oneshot_fashion_cpu.yaml", "oneshot_fashion_gpu.yaml"}


def test_whole_config_errors_say_config_once():
    with pytest.raises(ModnasError) as info:
        load_config(None, {"query_budget": 10, "initial_queries": 20})
    assert str(info.value) == "config: initial_queries (20) exceeds query_budget (10)"
