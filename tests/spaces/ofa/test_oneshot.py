"""One-shot search on the OFA space: the elastic supernet trained by the shared one-shot loop, its settings, and the
one-line errors of wrong ones."""

from __future__ import annotations

import math

import pytest
import torch

from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search.oneshot import OneShotSearch
from modnas.spaces.ofa.supernet import ElasticMobileNetV3

TINY = {
    "space": "ofa",
    "mode": "oneshot",
    "epochs": 1,
    "seed": 3,
    "pretrain_steps": 3,
    "oneshot.train_limit": 64,
    "oneshot.batch_size": 16,
    "oneshot.warmup_epochs": 0,
    "oneshot.supernet": {"width_mult": 0.25, "image_size": 16},
}


def test_the_shared_loop_trains_the_elastic_supernet():
    loop = OneShotSearch(load_config(None, TINY))
    assert isinstance(loop.supernet, ElasticMobileNetV3)
    assert loop.supernet.image_size == 16 and loop.supernet.width_mult == 0.25
    assert loop.supernet.resolutions == loop.space.resolutions  # the benchmark space's 160-224
    before = {k: v.clone() for k, v in loop.supernet.state_dict().items()}
    info = loop.train_epoch()
    assert math.isfinite(info["ce_weights"]) and math.isfinite(info["loss"])
    changed = [k for k, v in loop.supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert any("expand_conv" in k for k in changed) and any("transform_5" in k or "transform_3" in k for k in changed)
    rows, fronts = loop.evaluate()
    assert len(rows) == 13 and all(0.0 <= r["hv"] <= 1.0 for r in rows)
    assert all(f["arch_str"].startswith("r") for f in fronts)


def test_supernet_settings_are_checked():
    with pytest.raises(ModnasError, match="no setting depth"):
        OneShotSearch(load_config(None, {**TINY, "oneshot.supernet": {"depth": 3}}))
    with pytest.raises(ModnasError, match="width_mult must be a number"):
        OneShotSearch(load_config(None, {**TINY, "oneshot.supernet": {"width_mult": "wide"}}))
    with pytest.raises(ModnasError, match="give it as oneshot.C"):
        OneShotSearch(load_config(None, {**TINY, "space": "nb201", "oneshot.supernet": {"C": 4}}))
