"""One-shot search: the bilevel step (no gradient leakage), the error normalisation, bit-exact resume, data errors,
a run directory on digits, and a small slice of the real Fashion-MNIST."""

from __future__ import annotations

import io
import math
import shutil

import pytest
import torch

from modnas.config import load_config
from modnas.datasets import FASHION_SYSTEM_DIR
from modnas.errors import ModnasError
from modnas.search.oneshot import OneShotSearch

TINY = {
    "mode": "oneshot",
    "epochs": 2,
    "seed": 5,
    "pretrain_steps": 5,
    "oneshot.train_limit": 128,
    "oneshot.batch_size": 32,
    "oneshot.C": 4,
    "oneshot.N": 1,
    "oneshot.warmup_epochs": 0,
}


def tiny_config(**extra):
    return load_config(None, {**TINY, **extra})


def hypernet_params(loop: OneShotSearch) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in loop.hypernet.state_dict().items()}


def test_steps_and_shapes():
    loop = OneShotSearch(tiny_config())
    assert loop.epoch_length() == 2  # 64 weight images / batch 32
    assert loop.preferences_per_step() == 1
    assert loop.supernet.in_channels == 1 and loop.supernet.num_classes == 10
    assert len(loop.y_weights) == len(loop.y_hyper) == 64


def test_hypernet_phase_leaves_no_gradient_on_the_supernet():
    loop = OneShotSearch(tiny_config())
    before = {k: v.clone() for k, v in loop.supernet.state_dict().items()}
    info = loop.hypernet_step()
    assert all(p.grad is None for p in loop.supernet.parameters())  # spec 12.1: nothing to leak
    for name, tensor in loop.supernet.state_dict().items():
        if "running" not in name and "num_batches" not in name:  # BN statistics do move; weights must not
            assert torch.equal(tensor, before[name]), name
    assert math.isfinite(info["err_n"]) and 0.0 <= info["err_n"] <= 1.0  # defined from the very first step
    low, high = loop.ce_range()
    assert high > low


def test_normalised_error_is_differentiable_in_the_one_hot():
    loop = OneShotSearch(tiny_config())
    onehot = torch.nn.functional.one_hot(torch.randint(0, 5, (13, 1, 6)), 5).float().requires_grad_(True)
    err = loop.normalised_error(onehot)
    assert err.shape == (13, 1)
    values = err.detach().flatten()  # the window holds only these 13 values: its min maps to 0, its quantile to 1
    assert float(values.min()) == 0.0 and torch.isclose(values.quantile(loop.settings["ce_quantile"]), torch.tensor(1.0))
    (grad,) = torch.autograd.grad(err.sum(), onehot)
    assert grad.abs().sum() > 0


def test_several_preferences_share_the_hypernetwork_batch():
    loop = OneShotSearch(tiny_config(**{"oneshot.preferences_per_device": 4}))
    calls = []
    forward = loop.supernet.forward
    loop.supernet.forward = lambda x, onehot, ops=None: calls.append(len(x)) or forward(x, onehot, ops)
    info = loop.hypernet_step()
    assert calls == [8] * (13 * 4)  # 13 devices x 4 preferences, each on a quarter of the batch of 32
    assert math.isfinite(info["err_n"])
    with pytest.raises(ModnasError, match="fewer than 2 images"):
        OneShotSearch(tiny_config(**{"oneshot.preferences_per_device": 20}))


def test_a_step_trains_both_levels():
    loop = OneShotSearch(tiny_config())
    hyper = hypernet_params(loop)
    weights = [p.detach().clone() for p in loop.supernet.parameters()]
    info = loop.step()
    assert {"err_n", "lat_n", "ce_hyper", "ce_weights", "acc_weights"} <= set(info)
    assert any(not torch.equal(v, hyper[k]) for k, v in loop.hypernet.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(weights, loop.supernet.parameters()))


def test_warmup_trains_only_the_weights():
    loop = OneShotSearch(tiny_config(**{"oneshot.warmup_epochs": 1}))
    hyper = hypernet_params(loop)
    info = loop.train_epoch()
    assert "err_n" not in info and "ce_weights" in info
    assert all(torch.equal(v, hyper[k]) for k, v in loop.hypernet.state_dict().items())
    assert "err_n" in loop.train_epoch()


def test_resume_is_bit_exact():
    config = tiny_config()
    straight = OneShotSearch(config)
    for _ in range(2):
        straight.train_epoch()

    first = OneShotSearch(config)
    first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = OneShotSearch(config)
    second.load_state_dict(torch.load(buffer, weights_only=False))
    second.train_epoch()

    for name, tensor in straight.hypernet.state_dict().items():
        assert torch.equal(tensor, second.hypernet.state_dict()[name]), name
    for name, tensor in straight.supernet.state_dict().items():
        assert torch.equal(tensor, second.supernet.state_dict()[name]), name
    assert straight.epoch == second.epoch == 2


def test_incompatible_state_is_refused():
    loop = OneShotSearch(tiny_config())
    with pytest.raises(ModnasError, match="not from a one-shot search"):
        loop.load_state_dict({"epoch": 1})
    state = loop.state_dict()
    other = OneShotSearch(tiny_config(**{"oneshot.train_limit": 96}))
    with pytest.raises(ModnasError, match="trained on"):
        other.load_state_dict(state)


def test_data_problems_are_one_line_errors(tmp_path):
    with pytest.raises(ModnasError, match="fewer than one batch"):
        OneShotSearch(tiny_config(**{"oneshot.batch_size": 100}))
    with pytest.raises(ModnasError, match="apt-get install dataset-fashion-mnist"):
        OneShotSearch(tiny_config(**{"oneshot.dataset": "fashion-mnist", "oneshot.data_dir": str(tmp_path)}))
    with pytest.raises(ModnasError, match="CUDA"):
        if torch.cuda.is_available():
            raise ModnasError("CUDA present: nothing to check")
        OneShotSearch(tiny_config(**{"oneshot.device": "cuda"}))


def test_search_run_directory_and_resume(tmp_path):
    from modnas.search import evaluate_run, resume_search, run_note, search

    config = tiny_config()
    out = tmp_path / "run"
    summary = search(config, out)
    assert summary["epoch"] == 2 and len(summary["devices"]) == 19 and summary["queries"] == 0
    assert "proxy" in summary["note"]  # the shared scorer's CIFAR-10 accuracy is not the searched dataset's
    assert len(evaluate_run(out)) == 19
    assert run_note(out) == summary["note"]  # `modnas evaluate` repeats the caveat under its table
    with pytest.raises(ModnasError, match="already complete"):
        resume_search(out)
    # front/export read a one-shot run too: the supernet stands in for the error predictor
    from modnas.search.trained import TrainedSearch, export_architecture
    from modnas.spaces.nb201.devices import registry

    trained = TrainedSearch.load(out)
    choice = trained.choose(registry.get("pixel3"), [1.0, 0.0])
    assert 0.0 <= choice["predicted_error"] <= 100.0 and choice["arch_str"].startswith("|")
    json_path, _ = export_architecture(choice, tmp_path / "arch")
    assert json_path.is_file()


def test_interrupted_run_resumes_to_the_same_hypernetwork(tmp_path):
    from modnas.search import resume_search, search

    class Stop(Exception):
        pass

    def stop_in_epoch_two(done: int, total: int, hv: float | None) -> None:
        if done >= 3:  # 2 steps per epoch: the run dies in its second epoch, after one checkpoint
            raise Stop

    config = tiny_config()
    search(config, tmp_path / "straight")
    with pytest.raises(Stop):
        search(config, tmp_path / "resumed", progress=stop_in_epoch_two)
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "resumed", damaged)
    checkpoint = damaged / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    before = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    with pytest.raises(ModnasError, match="damaged"):
        resume_search(damaged)
    assert {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()} == before  # nothing rewritten
    resume_search(tmp_path / "resumed")
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    for name, tensor in a["hypernet"].items():
        assert torch.equal(tensor, b["hypernet"][name]), name
    for name, tensor in a["oneshot"]["supernet"].items():
        assert torch.equal(tensor, b["oneshot"]["supernet"][name]), name


@pytest.mark.skipif(
    not (FASHION_SYSTEM_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_fashion_mnist_slice():
    loop = OneShotSearch(tiny_config(**{"oneshot.dataset": "fashion-mnist", "epochs": 1}))
    assert loop.x_weights.shape[1:] == (1, 28, 28) and loop.crop_pad == 2 and loop.flip
    result = loop.run_epoch()
    assert len(result.rows) == 19 and math.isfinite(result.extra["ce_weights"])
