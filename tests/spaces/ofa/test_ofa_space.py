"""OFA MobileNetV3: keys, the gated space, the published encodings and predictors against the data's test vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.ofa import OFAArch
from modnas.spaces.ofa.encoding import accuracy_features, accuracy_vector, help_features, help_vector
from modnas.spaces.ofa.latency import GPU_SETTINGS, arch_of_row
from modnas.spaces.ofa.predictors import DATA, HelpLatencyNet, accuracy_predictor
from modnas.spaces.ofa.space import REFERENCE_KEYS, OFASpace

#: per-architecture values of the published predictors for HELP's 5,000 architectures (data README, file 4)
DERIVED = Path(__file__).resolve().parents[2] / "data" / "ofa_help_archs_derived.csv.gz"
#: the OFA tutorial's Note10 search result (data README, section 3, check 1)
TUTORIAL = "r192_5333_5434_767334_54547433_363656"


@pytest.fixture(scope="module")
def help_archs() -> pd.DataFrame:
    with DATA.joinpath("ofa_help_archs_latency.csv.gz").open("rb") as f:
        return pd.read_csv(f, compression="gzip")


def test_keys_round_trip_and_ignore_inactive_slots():
    arch = OFAArch.from_key(TUTORIAL)
    assert arch.d == (2, 2, 3, 4, 3) and arch.blocks()[0] == (0, 0, 5, 3) and len(arch.blocks()) == 14
    assert OFAArch.from_dict(arch.to_dict()).key == TUTORIAL
    leftovers = arch.to_dict()
    leftovers["ks"][2], leftovers["e"][3] = 7, 6  # slots 2 and 3 of stage 1 do not exist at depth 2
    assert OFAArch.from_dict(leftovers).key == TUTORIAL
    space = OFASpace()
    a, b = space.parse(TUTORIAL), space.indices(OFAArch.from_dict(leftovers))
    assert (a == b).all() and space.to_key(a) == TUTORIAL
    messy = a.copy()
    messy[space.decisions.index(next(d for d in space.decisions if d.name == "k3"))] = 2  # inactive slot
    assert space.to_key(messy) == TUTORIAL
    torch.testing.assert_close(help_features(space, space.to_onehot(messy)), help_features(space, space.to_onehot(a)))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("r192_5333", "5 stages"),
        ("r190_5333_5434_767334_54547433_363656", "resolution 190"),
        ("r192_53_5434_767334_54547433_363656", "2 to 4 blocks"),
        ("r192_5933_5434_767334_54547433_363656", r"e\[0\] = 9"),
        ("r192_5333_5434_767334_54547433_36365", "2 to 4 blocks"),
    ],
)
def test_malformed_keys_are_one_line_errors(bad, message):
    with pytest.raises(ModnasError, match=message) as exc:
        OFASpace().parse(bad)
    assert "\n" not in str(exc.value)


def test_malformed_dicts_are_one_line_errors():
    good = OFAArch.from_key(TUTORIAL).to_dict()
    for broken, message in [
        ({k: v for k, v in good.items() if k != "d"}, "missing d"),
        ({**good, "d": [2, 2, 3]}, "d needs 5 values"),
        ({**good, "ks": [3] * 19}, "ks needs 20 values"),
        ({**good, "r": 300}, "resolution 300"),
        ({**good, "d": [2, 2, 5, 4, 3]}, "d\\[2\\] = 5"),
        ({**good, "ks": [4] + good["ks"][1:]}, "ks\\[0\\] = 4"),
    ]:
        with pytest.raises(ModnasError, match=message):
            OFAArch.from_dict(broken)


def test_gates_follow_the_depths():
    space = OFASpace()
    rng = np.random.default_rng(0)
    for idx in space.sample(200, rng):
        arch = space.arch(idx)
        active = space.active(idx[None])[0]
        for i in range(20):
            assert active[6 + 2 * i] == active[7 + 2 * i] == arch.active(i)
    assert len({space.to_key(i) for i in space.sample(500, rng)}) == 500  # about 1e19 architectures
    assert space.enumerate() is None
    small, large = (OFAArch.from_key(k) for k in space.extremes())
    assert small.r == 128 and set(small.d) == {2} and large.r == 224 and set(large.ks) == {7}


def test_restricted_resolutions():
    space = OFASpace(range(160, 225, 4))
    assert space.decisions[0].options[0] == "160" and space.max_options == 17
    with pytest.raises(ModnasError, match="outside this OFA space"):
        space.parse("r128_3333_3333_3333_3333_3333")
    with pytest.raises(ModnasError):
        OFASpace([100])


def test_encodings_match_the_written_layouts(help_archs):
    space = OFASpace()
    archs = [arch_of_row(row) for _, row in help_archs.head(300).iterrows()]
    onehot = space.to_onehot(np.stack([space.indices(a) for a in archs]))
    np.testing.assert_array_equal(help_features(space, onehot).numpy(), np.stack([help_vector(a) for a in archs]))
    np.testing.assert_array_equal(accuracy_features(space, onehot).numpy(), np.stack([accuracy_vector(a) for a in archs]))
    restricted = OFASpace(range(160, 225, 4))
    kept = [a for a in archs if a.r >= 160]
    onehot = restricted.to_onehot(np.stack([restricted.indices(a) for a in kept]))
    np.testing.assert_array_equal(help_features(restricted, onehot).numpy(), np.stack([help_vector(a) for a in kept]))


def test_encoding_is_differentiable():
    space = OFASpace()
    logits = torch.zeros(2, space.num_decisions, space.max_options, requires_grad=True)
    soft = torch.softmax(space.mask_logits(logits), dim=-1)
    (help_features(space, soft).sum() + accuracy_features(space, soft).sum()).backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_accuracy_predictor_reproduces_the_test_vectors(help_archs):
    derived = pd.read_csv(DERIVED)
    space = OFASpace()
    onehot = space.to_onehot(np.stack([space.indices(arch_of_row(row)) for _, row in help_archs.iterrows()]))
    predicted = 100 * accuracy_predictor()(accuracy_features(space, onehot)).numpy()
    np.testing.assert_allclose(predicted, derived["acc_pred_ofa_tutorial_pct"].to_numpy(), atol=1e-4)
    # the OFA tutorial's published number: 81.71 % for its Note10 architecture at r = 192
    tutorial = space.to_onehot(space.parse(TUTORIAL)[None])
    assert round(100 * float(accuracy_predictor()(accuracy_features(space, tutorial))[0]), 2) == 81.71


def test_help_latency_net_reproduces_the_test_vectors(help_archs):
    derived = pd.read_csv(DERIVED)
    space = OFASpace()
    net = HelpLatencyNet()
    onehot = space.to_onehot(np.stack([space.indices(arch_of_row(row)) for _, row in help_archs.iterrows()]))
    features = help_features(space, onehot)
    ref = help_archs[help_archs.hw_embed_ref_rank >= 0].sort_values("hw_embed_ref_rank")
    assert [arch_of_row(row).key for _, row in ref.iterrows()] == list(REFERENCE_KEYS)
    for device in GPU_SETTINGS:  # the 12 HELP GPU settings
        lat = ref[f"lat_{device}"].to_numpy()
        emb = torch.tensor((lat - lat.min()) / (lat.max() - lat.min()), dtype=torch.float32)
        predicted = net(features, emb.expand(len(features), -1)).numpy()
        np.testing.assert_allclose(predicted, derived[f"modnas_predlat_{device}"].to_numpy(), atol=1e-3)
