"""OFA GPU latency surrogates: exact where HELP measured, monotone everywhere, accurate on held-out architectures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from modnas.errors import ModnasError
from modnas.spaces.ofa import OFAArch
from modnas.spaces.ofa.latency import MODELS, latency, make_model, measured_table
from modnas.spaces.ofa.space import OFASpace


def test_measured_architectures_get_their_measurement():
    table = measured_table()
    keys = list(table["key"][:50])
    np.testing.assert_array_equal(latency(keys, "v100_32"), table["lat_v100_32"][:50].to_numpy())


@pytest.mark.parametrize("model", list(MODELS))
def test_surrogates_never_make_a_larger_network_faster(model):
    table = measured_table()
    archs = [OFAArch.from_key(k) for k in table["key"]]
    fitted = make_model(model).fit(archs, table["lat_titan_xp_1"].to_numpy())  # noisy batch-1 timings
    space = OFASpace()
    for arch in (space.arch(i) for i in space.sample(60, np.random.default_rng(4))):
        larger = arch.larger_neighbours()
        assert (fitted.predict(larger) >= fitted.predict([arch])[0] - 1e-9).all()


@pytest.mark.parametrize(("setting", "floor"), [("titan_rtx_64", 0.98), ("titan_rtx_1", 0.8)])
def test_default_surrogate_ranks_held_out_architectures(setting, floor):
    table = measured_table()
    archs = [OFAArch.from_key(k) for k in table["key"]]
    y = table[f"lat_{setting}"].to_numpy()
    order = np.random.default_rng(0).permutation(len(archs))
    train, test = order[:4000], order[4000:]
    model = make_model().fit([archs[i] for i in train], y[train])
    predicted = model.predict([archs[i] for i in test])
    assert spearmanr(predicted, y[test])[0] >= floor
    assert np.mean(np.abs(predicted - y[test]) / y[test]) < 0.1


def test_unknown_settings_and_models_are_one_line_errors():
    with pytest.raises(ModnasError, match="no OFA latency measurements for 'a100_1'"):
        latency(["r224_3333_3333_3333_3333_3333"], "a100_1")
    with pytest.raises(ModnasError, match="unknown OFA latency model"):
        make_model("forest")
