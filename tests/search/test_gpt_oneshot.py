"""One-shot search of gpt-tiny on a slice of the King James Bible, its inherited perplexity, standalone training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from modnas.cli import app
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search import search
from modnas.search.inherited import inherited_scores

try:
    from modnas.text import load_corpus

    load_corpus("bible-kjv")
    HAVE_BIBLE = True
except ModnasError:
    HAVE_BIBLE = False

pytestmark = pytest.mark.skipif(not HAVE_BIBLE, reason="needs the Debian package bible-kjv")

SLICE = {
    "space": "gpt-tiny", "mode": "oneshot", "epochs": 2, "seed": 3, "oneshot.train_limit": 64,
    "oneshot.batch_size": 16, "oneshot.warmup_epochs": 1, "oneshot.score_windows": 2,
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpt") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        search(load_config(None, SLICE), out)
    finally:
        torch.set_num_threads(threads)
    return out


def test_fronts_are_rated_by_held_out_cross_entropy(run):
    import pandas as pd

    metrics = pd.read_csv(run / "metrics.csv")
    assert sorted(metrics["epoch"].unique()) == [1, 2]
    assert metrics["hv"].between(0.0, 1.0).all() and metrics["hv"].max() > 0
    assert metrics["igd_plus"].isna().all()  # no reference front for a space without quality ground truth
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epoch"] == 2 and 0 < summary["mean_hv"] <= 1
    fronts = pd.read_csv(run / "fronts.csv")
    assert fronts["arch_str"].str.startswith("gpt-tiny-").all()


def test_inherited_scores_report_test_perplexity(run):
    scores = inherited_scores(run, max_images=8)
    assert scores and all(s.metric == "perplexity" and s.images == 8 for s in scores)
    for s in scores:
        perplexities = [p for _, p, _ in s.front]
        assert perplexities == sorted(perplexities) and 1.0 < perplexities[0] < 256.0
    result = CliRunner().invoke(app, ["evaluate", str(run), "--inherited", "--max-images", "8"])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output


def test_a_pick_trains_standalone_on_text(run, tmp_path):
    import pandas as pd

    key = str(pd.read_csv(run / "fronts.csv")["arch_str"].iloc[-1])
    result = CliRunner().invoke(app, ["train", key, "--space", "gpt-tiny", "--data", "bible-kjv", "--epochs", "1",
                                      "--train-limit", "32", "--batch-size", "16", "--out", str(tmp_path / "t"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["space"] == "gpt-tiny" and math.isfinite(out["test_perplexity"]) and out["test_perplexity"] > 1


def test_a_pick_exports_with_its_inherited_weights(run, tmp_path):
    from modnas.export import build_for_export
    from modnas.search.inherited import inherited_network

    out = tmp_path / "pick"
    result = CliRunner().invoke(app, ["export", str(run), "--device", "epyc-b8-s128-t2", "--preference", "0.5,0.5",
                                      "--format", "pt2", "--inherited", "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    network = record["network"]
    assert network["num_classes"] == 256 and network["image_size"] == 128
    # a language model has no batch normalisation to recompute
    assert network["weights"].startswith("inherited from the supernet") and "batch-norm" not in network["weights"]
    spec, state, _ = inherited_network(run, record["arch_str"])
    tokens = torch.randint(0, 256, (2, 128), generator=torch.Generator().manual_seed(0))
    program = torch.export.load(str(out.with_suffix(".pt2"))).module()
    model = build_for_export(spec, state)
    torch.testing.assert_close(program(tokens), model(tokens), atol=1e-4, rtol=1e-4)
    # the supernet's weights, not a fresh model's
    assert not torch.allclose(build_for_export(spec)(tokens), model(tokens), atol=1e-3)
