"""modnas.distributed: how work is split, the one-process no-ops, global-batch normalisation and the replica check
(in two gloo processes), and the one-line refusals."""

from __future__ import annotations

import os
import traceback

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from modnas.config import load_config
from modnas.distributed import SINGLE, GlobalBatchNorm2d, Ranks, to_global_batchnorm, use_global_batchnorm
from modnas.errors import ModnasError
from modnas.search import search


def test_devices_and_batches_are_cut_into_contiguous_blocks():
    for world in (1, 2, 3, 5, 16):
        ranks = [Ranks(r, world) for r in range(world)]
        owned = [list(r.owned(13)) for r in ranks]
        assert [d for block in owned for d in block] == list(range(13))  # every device once, in order
        assert max(map(len, owned)) - min(map(len, owned)) <= 1
        shards = [r.shard(30) for r in ranks]
        assert [i for s in shards for i in list(range(30))[s]] == list(range(30))
    assert list(Ranks(15, 16).owned(13)) == []  # more ranks than devices: some own none


def test_one_process_does_everything_without_collectives():
    assert not SINGLE.active and SINGLE.is_main
    assert SINGLE.owned(13) == range(13) and SINGLE.shard(32) == slice(0, 32)
    t = torch.arange(3.0)
    assert SINGLE.sum(t) is t and torch.equal(t, torch.arange(3.0))
    assert SINGLE.broadcast({"a": 1}) == {"a": 1}
    SINGLE.check_replicas({"x": t}, epoch=1)  # nothing to compare with


def test_global_batchnorm_is_batchnorm_outside_a_process_group():
    net = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm2d(3, affine=False)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    to_global_batchnorm(net)
    assert isinstance(net[1], GlobalBatchNorm2d) and isinstance(net[2][0], GlobalBatchNorm2d)
    assert net[2][0].affine is False
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # same state dict
    reference = nn.BatchNorm2d(3)
    reference.load_state_dict(net[1].state_dict())
    x = torch.randn(4, 3, 5, 5)
    with use_global_batchnorm(net):
        assert torch.equal(net[1](x), reference(x))


def _two_ranks(rank: int, world: int, init_file: str, errors: mp.Queue) -> None:
    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
        ranks = Ranks(rank, world)
        torch.manual_seed(0)  # the same full batch and layer on both ranks
        x = torch.randn(6, 3, 4, 4) * 3 + 1
        target = torch.randn(6, 3, 4, 4)
        full = nn.BatchNorm2d(3)
        nn.init.uniform_(full.weight)
        nn.init.uniform_(full.bias)
        shared = to_global_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))
        shared[0].load_state_dict(full.state_dict())

        # reference: one process, the whole batch
        xr = x.clone().requires_grad_(True)
        expected = full(xr)
        ((expected - target) ** 2).sum().backward()
        # this rank's shard, statistics of the whole batch, gradients summed over the ranks
        part = ranks.shard(len(x))
        xs = x[part].clone().requires_grad_(True)
        with use_global_batchnorm(shared):
            out = shared(xs)
        ((out - target[part]) ** 2).sum().backward()
        ranks.sum_grads(list(shared.parameters()))
        assert torch.allclose(out, expected[part].detach(), atol=1e-5), "output"
        assert torch.allclose(xs.grad, xr.grad[part], atol=1e-4), "input gradient"
        assert torch.allclose(shared[0].weight.grad, full.weight.grad, atol=1e-4), "weight gradient"
        # the running statistics follow the global batch, the same on every rank
        assert torch.allclose(shared[0].running_mean, full.running_mean, atol=1e-6), "running mean"
        assert torch.allclose(shared[0].running_var, full.running_var, atol=1e-5), "running var"
        # outside the weight phase: local statistics, running statistics untouched
        kept = shared[0].running_mean.clone()
        local = shared(x[part])
        assert torch.allclose(local, nn.functional.batch_norm(
            x[part], None, None, shared[0].weight, shared[0].bias, True, 0.0, shared[0].eps), atol=1e-6)
        assert torch.equal(shared[0].running_mean, kept)

        # rows summed from zeros: every rank gets every row, exactly
        rows = torch.zeros(3, 2)
        for i in ranks.owned(3):
            rows[i] = torch.tensor([i + 0.1, i / 3])
        ranks.sum(rows)
        assert torch.equal(rows, torch.tensor([[0.1, 0.0], [1.1, 1 / 3], [2.1, 2 / 3]]))
        assert ranks.broadcast({"from": rank}) == {"from": 0}

        ranks.check_replicas({"same": torch.ones(3)}, epoch=1)
        try:
            ranks.check_replicas({"same": torch.ones(3), "hypernet.w": torch.full((2,), float(rank))}, epoch=4)
        except ModnasError as exc:
            assert "after epoch 4: hypernet.w differ between rank 0 and rank(s) 1" in str(exc), str(exc)
        else:
            raise AssertionError("diverged replicas were not noticed")
        dist.destroy_process_group()
    except BaseException:
        errors.put(f"rank {rank}: {traceback.format_exc()}")
        raise


def test_global_statistics_summed_rows_and_replica_check_on_two_processes(tmp_path):
    errors = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(_two_ranks, args=(2, str(tmp_path / "init"), errors), nprocs=2, join=True)
    except mp.ProcessRaisedException:  # the workers' own tracebacks say more than spawn's summary
        found = []
        while not errors.empty():
            found.append(errors.get())
        pytest.fail("\n".join(found) or "a worker failed")


def test_benchmark_mode_refuses_several_processes(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ModnasError, match="benchmark mode runs in one process"):
        search(load_config(None, {"epochs": 1}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_world_without_a_launcher_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ModnasError, match="launch with torchrun"):
        search(load_config(None, {"mode": "oneshot", "epochs": 1}), tmp_path / "run")


def test_more_processes_than_images_in_a_batch_are_refused():
    from modnas.search.oneshot import OneShotSearch

    config = load_config(None, {"mode": "oneshot", "oneshot.train_limit": 64, "oneshot.batch_size": 4,
                                "oneshot.C": 2, "oneshot.N": 1})
    with pytest.raises(ModnasError, match="8 processes share a batch of 4 images"):
        OneShotSearch(config, ranks=Ranks(0, 8))


def test_max_restarts_without_out_is_refused(monkeypatch):
    from typer.testing import CliRunner

    from modnas.cli import app

    monkeypatch.setenv("TORCHELASTIC_MAX_RESTARTS", "1")
    result = CliRunner().invoke(app, ["search", "--mode", "oneshot", "--epochs", "1"])
    assert result.exit_code == 2
    assert "--max-restarts needs --out" in result.output
    assert os.environ.get("WORLD_SIZE") in (None, "1")
