"""SearchConfig: defaults, YAML, overrides and one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modnas.config import (
    ONESHOT_PRESETS,
    ErrorPredictorConfig,
    ExperimentalConfig,
    SearchConfig,
    load_config,
    make_config,
    parse_assignments,
    upgrade_config_data,
)
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


# -- the experimental section -------------------------------------------------------------------------------------

#: The experimental settings at their places before the ``experimental`` section, with non-default values.
OLD_PLACES = (
    "query_proposals: hypernet\n"
    "fill_with_neighbours: false\n"
    "lr_schedule: constant\n"
    "error_predictor:\n  steps: 11\n  pessimism: 1.5\n"
)
MOVED = {"query_proposals": "hypernet", "fill_with_neighbours": False, "lr_schedule": "constant", "pessimism": 1.5}


def test_experimental_defaults_are_what_a_default_search_did():
    cfg = load_config()
    assert cfg.experimental == ExperimentalConfig()
    assert cfg.experimental.model_dump() == {
        "query_proposals": "hypernet+argmin", "fill_with_neighbours": True, "pessimism": 0.0, "lr_schedule": "cosine",
    }
    assert "experimental:\n  query_proposals: hypernet+argmin\n" in cfg.to_yaml()
    for old in ("query_proposals", "fill_with_neighbours", "lr_schedule"):
        assert old not in SearchConfig.model_fields
    assert "pessimism" not in ErrorPredictorConfig.model_fields


def test_new_place_file_and_set(tmp_path, caplog):
    path = tmp_path / "c.yaml"
    path.write_text("experimental:\n  query_proposals: hypernet\n  pessimism: 0.5\n")
    with caplog.at_level(logging.WARNING, logger="modnas"):
        cfg = load_config(path, parse_assignments(["experimental.lr_schedule=constant"]))
    assert cfg.experimental.model_dump() == {
        "query_proposals": "hypernet", "fill_with_neighbours": True, "pessimism": 0.5, "lr_schedule": "constant",
    }
    assert not caplog.records


def test_old_places_still_load_with_a_deprecation_warning(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text(OLD_PLACES)
    with caplog.at_level(logging.WARNING, logger="modnas"):
        cfg = load_config(path)
    assert cfg.experimental.model_dump() == MOVED
    assert cfg.error_predictor.steps == 11  # the rest of the section stays
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "deprecated config keys query_proposals, fill_with_neighbours, lr_schedule, error_predictor.pessimism" in message
    assert "experimental.query_proposals" in message and "experimental.pessimism" in message
    # the written config has the new layout and reads back without a warning
    caplog.clear()
    path.write_text(cfg.to_yaml())
    with caplog.at_level(logging.WARNING, logger="modnas"):
        assert load_config(path) == cfg
    assert not caplog.records


def test_old_places_from_overrides_and_quietly(caplog):
    with caplog.at_level(logging.WARNING, logger="modnas"):
        cfg = load_config(None, {"query_proposals": "hypernet", "error_predictor.pessimism": 2.0})
    assert (cfg.experimental.query_proposals, cfg.experimental.pessimism) == ("hypernet", 2.0)
    assert len(caplog.records) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modnas"):
        assert make_config({"query_proposals": "hypernet"}, quiet_upgrade=True).experimental.query_proposals == "hypernet"
    assert not caplog.records


def test_old_and_new_place_together(tmp_path):
    same = load_config(None, {"query_proposals": "hypernet", "experimental.query_proposals": "hypernet"})
    assert same.experimental.query_proposals == "hypernet"
    with pytest.raises(ModnasError, match=r"sets query_proposals \('hypernet'\) and experimental.query_proposals") as info:
        load_config(None, {"query_proposals": "hypernet", "experimental.query_proposals": "hypernet+argmin"})
    assert "\n" not in str(info.value)
    with pytest.raises(ModnasError, match="config experimental.query_proposals"):
        load_config(None, {"query_proposals": "argmax"})  # a bad value at the old place is judged at the new one
    with pytest.raises(ModnasError, match="unknown config key 'experimental.path_hidden'"):
        load_config(None, {"experimental.path_hidden": 0})


def flat_config(config: SearchConfig) -> dict:
    """``config`` as a run directory written before the experimental section (and before ``space``) held it."""
    data = config.model_dump(mode="json")
    experimental = data.pop("experimental")
    data.pop("space")
    data["error_predictor"]["pessimism"] = experimental.pop("pessimism")
    data.update(experimental)
    return data


def test_an_old_runs_flat_config_upgrades_to_the_same_config():
    cfg = load_config(None, {"seed": 4, "experimental.query_proposals": "hypernet"})
    flat = flat_config(cfg)
    assert "experimental" not in flat and flat["query_proposals"] == "hypernet"
    upgraded, moved = upgrade_config_data({"space": "nb201", **flat})
    assert upgraded == cfg.model_dump(mode="json")
    assert moved == ["query_proposals", "fill_with_neighbours", "lr_schedule", "error_predictor.pessimism"]
    assert make_config(flat, quiet_upgrade=True) == cfg
    assert flat["error_predictor"]["pessimism"] == 0.0  # the input is not changed
