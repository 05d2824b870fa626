"""QueryBudget counting and the differentiable ErrorPredictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modnas.config import ErrorPredictorConfig
from modnas.errors import ModnasError
from modnas.problem import get_problem
from modnas.search.error_model import ErrorPredictor, QueryBudget
from modnas.spaces.nb201 import index_to_string, to_onehot
from modnas.tables.nb201 import nb201_tables


def K(*indices: int) -> list[str]:
    """Canonical keys (architecture strings) of table indices."""
    return [index_to_string(i) for i in indices]

SMALL = ErrorPredictorConfig(gcn_hidden=8, flat_hidden=8, head_hidden=8, ensemble=2, steps=30)


def test_budget_counts_distinct_architectures_in_order():
    budget = QueryBudget(5)
    errors = budget.query(K(7, 3, 7))
    assert budget.queried == K(7, 3) and budget.used == 2 and budget.remaining == 3
    assert errors[0] == errors[2] == pytest.approx(100 - nb201_tables.accuracy(7))
    budget.query(K(3, 3, 7))  # repeats are free
    assert budget.used == 2
    budget.query(K(1, 2, 3))
    assert budget.queried == K(7, 3, 1, 2) and K(3)[0] in budget and K(11)[0] not in budget


def test_budget_refuses_to_exceed_k_and_reads_nothing():
    budget = QueryBudget(3)
    budget.query(K(0, 1))
    with pytest.raises(ModnasError, match="budget exceeded"):
        budget.query(K(2, 4))
    assert budget.queried == K(0, 1)  # the refused call read nothing
    budget.query(K(1, 2))
    assert budget.used == 3 and budget.remaining == 0
    with pytest.raises(ModnasError):
        budget.query(K(5))


def test_budget_rejects_bad_input_and_round_trips():
    with pytest.raises(ModnasError):
        QueryBudget(0)
    budget = QueryBudget(4)
    with pytest.raises(ModnasError, match="malformed"):
        budget.query(["|conv~0|+"])
    assert budget.used == 0
    budget.query(K(10, 20))
    again = QueryBudget.from_state_dict(budget.state_dict())
    assert again.queried == K(10, 20) and again.errors == budget.errors and again.remaining == 2
    # checkpoints written before keys were the identity stored table indices
    legacy = QueryBudget.from_state_dict({"limit": 4, "queried": [10, 20], "errors": budget.errors})
    assert legacy.queried == K(10, 20)


def _data(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    idx = np.random.default_rng(seed).choice(15625, n, replace=False)
    onehot = to_onehot(nb201_tables.ops_codes[idx])
    return onehot, 100 - nb201_tables.accuracy(idx)


@pytest.mark.parametrize("config", [SMALL, SMALL.model_copy(update={"path_hidden": 8})], ids=["gcn", "gcn+path"])
def test_predictor_fits_and_is_differentiable_in_the_onehot(config):
    onehot, errors = _data()
    model = ErrorPredictor(config)
    loss = model.fit(onehot, errors, seed=1)
    assert np.isfinite(loss)
    x = onehot[:5].clone().requires_grad_(True)
    pred = model.error(x)
    assert pred.shape == (5,) and bool((pred > 0).all())
    pred.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())  # frozen: only the one-hot gets gradients


def test_fit_is_deterministic_and_keeps_the_global_rng():
    onehot, errors = _data()
    a, b = ErrorPredictor(SMALL), ErrorPredictor(SMALL)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a.fit(onehot, errors, seed=3)
    b.fit(onehot, errors, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    with torch.no_grad():
        assert torch.allclose(a.error(onehot), b.error(onehot))


def test_degenerate_errors_are_clipped_and_fit_refuses_bad_data():
    onehot, errors = _data()
    errors = errors.copy()
    errors[:3] = 90.0
    model = ErrorPredictor(SMALL)
    model.fit(onehot, errors)
    with torch.no_grad():
        assert float(model.error(onehot).max()) < 200  # targets were clipped at the cutoff
    with pytest.raises(ModnasError):
        model.fit(onehot[:1], errors[:1])
    with pytest.raises(ModnasError):
        model.fit(onehot, np.full(len(errors), 95.0))


# -- the Gaussian-process error model ------------------------------------------------------------------------------

GP = ErrorPredictorConfig(kind="gp", steps=60)


def _gpt_data(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    problem = get_problem("gpt-s")
    archs = problem.space.sample(n, np.random.default_rng(seed))
    errors = problem.truth.evaluate(problem.space.keys(archs), None, ("error",))[:, 0]
    return problem.space.to_onehot(archs), errors


def test_gp_ranks_gpt_perplexity_from_few_queries_better_than_the_networks():
    from scipy.stats import spearmanr

    onehot, errors = _gpt_data(150, seed=0)
    test_onehot, test_errors = _gpt_data(400, seed=1)
    space = get_problem("gpt-s").space
    scores = {}
    for name, config in {"gp": GP, "mlp": ErrorPredictorConfig(steps=300)}.items():
        model = ErrorPredictor(config, space)
        model.fit(onehot, errors, seed=0)
        with torch.no_grad():
            scores[name] = spearmanr(model.error(test_onehot).numpy(), test_errors).statistic
    assert scores["gp"] > 0.97 and scores["gp"] > scores["mlp"]


def test_gp_is_differentiable_deterministic_and_round_trips_through_a_state_dict():
    onehot, errors = _data(60)
    a, b = ErrorPredictor(GP), ErrorPredictor(GP)
    a.fit(onehot, errors, seed=0)
    b.fit(onehot, errors, seed=7)  # the fit draws no random numbers: any seed gives the same model
    x = onehot[:5].clone().requires_grad_(True)
    pred = a.error(x)
    pred.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    loaded = ErrorPredictor(GP)
    loaded.load_state_dict(a.state_dict())
    with torch.no_grad():
        assert torch.allclose(a.error(onehot), b.error(onehot))
        assert torch.equal(a.error(onehot), loaded.error(onehot))
        # near the data the fit is close; pessimism adds the posterior spread, which is larger away from it
        fitted = a.error(onehot)
        assert float((fitted.log() - torch.tensor(np.log(errors))).abs().median()) < 0.1
        far, _ = _data(60, seed=9)
        gp = a.members[0]
        assert float(gp.std(far).mean()) > float(gp.std(onehot).mean()) >= 0
        assert bool((a.error(far, pessimism=1.0) >= a.error(far)).all())
