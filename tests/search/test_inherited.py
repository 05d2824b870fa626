"""Inherited-weight scores of a one-shot run: every device's last front rated by the supernet's own test error."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from modnas.cli import app
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search import search
from modnas.search.inherited import InheritedEvaluator, inherited_scores

TINY = {
    "mode": "oneshot", "epochs": 1, "seed": 5, "pretrain_steps": 5, "oneshot.train_limit": 128,
    "oneshot.batch_size": 32, "oneshot.C": 4, "oneshot.N": 1, "oneshot.warmup_epochs": 0,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inherited") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        search(load_config(None, TINY), out)
    finally:
        torch.set_num_threads(threads)
    return out


def test_every_device_front_is_rated_by_the_supernets_test_error(run):
    scores = inherited_scores(run, max_images=100)
    assert len(scores) == 19 and {s.split for s in scores} == {"train", "test"}
    evaluator = InheritedEvaluator(load_config(run / "config.yaml"), torch.load(
        run / "checkpoints" / "last.pt", weights_only=True)["oneshot"]["supernet"], max_images=100)
    for s in scores:
        assert 0.0 <= s.hv <= 1.0 and s.images == 100 and s.n_front == len(s.front) >= 1
        errors = [e for _, e, _ in s.front]
        assert errors == sorted(errors) and s.best_error == pytest.approx(min(errors))
        latencies = [lat for _, _, lat in s.front]
        assert latencies == sorted(latencies, reverse=True)  # a front: more accurate is slower
        key, error, _ = s.front[0]
        assert evaluator.error(key) == pytest.approx(error)  # the same number from a fresh evaluator


def test_cli_prints_the_scores(run):
    result = CliRunner().invoke(app, ["evaluate", str(run), "--inherited", "--max-images", "50", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 19 and all(r["images"] == 50 and r["front"] for r in rows)


def test_an_epoch_is_chosen_and_checked(run):
    assert [s.front for s in inherited_scores(run, max_images=20, epoch=1)] == [
        s.front for s in inherited_scores(run, max_images=20)]  # the run's only epoch is its last
    with pytest.raises(ModnasError, match="no fronts of epoch 3"):
        inherited_scores(run, epoch=3)
    result = CliRunner().invoke(app, ["evaluate", str(run), "--epoch", "1"])
    assert result.exit_code == 2 and "--epoch goes with --inherited" in result.output


def test_benchmark_runs_are_refused(tmp_path):
    (tmp_path / "config.yaml").write_text("mode: benchmark\n", encoding="utf-8")
    with pytest.raises(ModnasError, match="benchmark-mode run"):
        inherited_scores(tmp_path)


def test_an_nb201_pick_cannot_be_exported_with_inherited_weights(run, tmp_path):
    """NB201's supernet mixes candidate operations and has no standalone sub-network to hand weights to."""
    result = CliRunner().invoke(app, ["export", str(run), "--device", "fpga", "--preference", "0.5,0.5",
                                      "--format", "pt2", "--inherited", "--out", str(tmp_path / "pick")])
    assert result.exit_code == 2 and "cannot hand its weights" in result.output
    assert not list(tmp_path.iterdir())
