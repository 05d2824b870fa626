"""The exact, differentiable linear energy model for eyeriss and fpga."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.errors import ModnasError
from modnas.spaces.nb201 import to_onehot
from modnas.spaces.nb201.energy import energy_model
from modnas.tables.nb201 import nb201_tables


@pytest.mark.parametrize("device", ["eyeriss", "fpga"])
def test_linear_model_reproduces_every_known_value(device):
    model = energy_model(device)
    table = nb201_tables.full_column("hwnasbench", f"{device}_energy")
    known = np.isfinite(table)
    predicted = model.predict(nb201_tables.ops_codes)
    np.testing.assert_allclose(predicted[known], table[known], rtol=1e-9, atol=1e-9)
    assert model.max_abs_residual < 1e-9
    assert np.isfinite(predicted[7581]) and np.isnan(table[7581])  # the model fills what the table lacks


def test_energy_is_differentiable_in_the_onehot():
    model = energy_model("fpga")
    onehot = to_onehot(nb201_tables.ops_codes[:3]).requires_grad_(True)
    values = model(onehot)
    np.testing.assert_allclose(values.detach().numpy(), model.predict(nb201_tables.ops_codes[:3]), rtol=1e-6)
    values.sum().backward()
    expected = torch.tensor(model.op_costs, dtype=torch.float32).expand(3, 6, 5)
    torch.testing.assert_close(onehot.grad, expected)


def test_energy_for_other_devices_is_refused():
    with pytest.raises(ModnasError, match="1080ti_1"):
        energy_model("1080ti_1")
