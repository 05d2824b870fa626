"""A one-shot search launched by torchrun: 2 processes on one machine, 2 "nodes" on localhost, and a killed worker
under ``--max-restarts``, each against a run in one process or an uninterrupted launch.

Tolerance. The hypernetwork phase is split by device and summed with zeros, so it is exact; the weight phase (split
by batch or by devices) sums the same gradient in another order, so it is the single-process one up to float32
rounding (about 1e-7 relative). After the two steps compared here the hypernetwork is within about 1e-5 and the
supernet within about 1e-7 of the single-process run; the ``ATOL`` values leave a wide margin. The picks, and so
summary.json, are equal. Longer runs drift further, as a single process does when only its thread count changes
(docs/distributed.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from modnas.config import load_config
from modnas.search import search

ATOL_HYPERNET = 1e-4
ATOL_SUPERNET = 5e-5

#: one epoch of 2 steps (64 weight images, batch 32), hypernetwork updates from the first step
SHORT = {
    "mode": "oneshot",
    "epochs": 1,
    "seed": 5,
    "pretrain_steps": 5,
    "oneshot": {
        "train_limit": 128, "batch_size": 32, "C": 4, "N": 1, "warmup_epochs": 0, "device": "cpu",
        "weight_split": "batch",
    },
}

pytestmark = pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                                reason="torchrun is not installed with this Python")


def _torchrun() -> str:
    local = Path(sys.executable).with_name("torchrun")
    return str(local) if local.exists() else str(shutil.which("torchrun"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHELASTIC", "RANK", "WORLD_SIZE", "MASTER"))}
    env.update(OMP_NUM_THREADS="1", MODNAS_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def _launch(config: Path, out: Path, home: Path, *torchrun_args: str) -> subprocess.Popen[str]:
    cmd = [_torchrun(), *torchrun_args, "-m", "modnas", "search", str(config), "--out", str(out), "--json"]
    return subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> str:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def _summary(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    summary.pop("seconds")
    return summary


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _weights(supernet_state: dict) -> dict:
    # BN running statistics are not compared: a single process also updates them in the hypernetwork phase, a
    # distributed run only from the global weight batches (the search never reads them)
    return {k: v for k, v in supernet_state.items() if "running" not in k and "num_batches" not in k}


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory):
    """The SHORT search in one process (in this one, 1 thread) and launched by torchrun on 2 processes."""
    root = tmp_path_factory.mktemp("torchrun")
    home = root / "home"
    config = _write_config(root / "short.yaml", SHORT)
    proc = _launch(config, root / "two", home, "--standalone", "--nproc-per-node", "2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        search(load_config(config), root / "one")
    finally:
        torch.set_num_threads(threads)
    printed = json.loads(_finish(proc))
    return {"root": root, "home": home, "config": config, "one": root / "one", "two": root / "two", "printed": printed}


def test_two_processes_match_one_process(short_runs):
    one, two = short_runs["one"], short_runs["two"]
    a, b = _state(one), _state(two)
    assert _max_diff(a["hypernet"], b["hypernet"]) < ATOL_HYPERNET
    assert _max_diff(_weights(a["oneshot"]["supernet"]), _weights(b["oneshot"]["supernet"])) < ATOL_SUPERNET
    assert a["epoch"] == b["epoch"] == 1
    assert _summary(one) == _summary(two)
    assert (one / "fronts.csv").read_text() == (two / "fronts.csv").read_text()
    meta = json.loads((two / "metadata.json").read_text())
    assert meta["world_size"] == 2 and meta["status"] == "complete"
    # rank 0 alone printed and wrote: one JSON summary on stdout, the usual files in the run directory
    assert short_runs["printed"]["run_dir"] == str(two)
    assert sorted(p.name for p in two.iterdir() if not p.name.startswith(".")) == sorted(
        p.name for p in one.iterdir() if not p.name.startswith(".")
    )


def test_two_nodes_on_localhost_match_one_process(short_runs):
    """Two torchrun launches joined over 127.0.0.1, one process each, the weight phase split by devices."""
    root, home = short_runs["root"], short_runs["home"]
    config = _write_config(root / "devices.yaml", {**SHORT, "oneshot": {**SHORT["oneshot"], "weight_split": "devices"}})
    port = _free_port()
    common = ("--nnodes", "2", "--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", str(port))
    # each "node" gets its own output path: only rank 0 (node 0) may write one
    procs = [_launch(config, root / f"node{node}", home, *common, "--node-rank", str(node)) for node in (0, 1)]
    for proc in procs:
        _finish(proc)
    assert not (root / "node1").exists()
    one, node0 = _state(short_runs["one"]), _state(root / "node0")
    assert _max_diff(one["hypernet"], node0["hypernet"]) < ATOL_HYPERNET
    assert _max_diff(_weights(one["oneshot"]["supernet"]), _weights(node0["oneshot"]["supernet"])) < ATOL_SUPERNET
    summary = _summary(root / "node0")
    assert summary == _summary(short_runs["one"])


def _worker_pids(parent: int) -> dict[int, int]:
    """LOCAL_RANK -> pid of the workers torchrun process ``parent`` started (read from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid != parent:
            continue
        for item in environ:
            if item.startswith(b"LOCAL_RANK="):
                found[int(item.split(b"=", 1)[1])] = int(entry.name)
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker processes through /proc")
def test_killed_worker_restarts_and_finishes_with_the_same_result(short_runs):
    root, home = short_runs["root"], short_runs["home"]
    # auto split (devices, on the CPU)
    config = _write_config(root / "three.yaml", {**SHORT, "epochs": 3, "oneshot": {**SHORT["oneshot"], "weight_split": "auto"}})
    reference = _launch(config, root / "whole", home, "--standalone", "--nproc-per-node", "2")
    _finish(reference)

    run = root / "killed"
    proc = _launch(config, run, home, "--standalone", "--nproc-per-node", "2", "--max-restarts", "1")
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.pt").exists():  # the first epoch is saved
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    workers = _worker_pids(proc.pid)
    assert set(workers) == {0, 1}
    os.kill(workers[1], signal.SIGKILL)
    _finish(proc)

    meta = json.loads((run / "metadata.json").read_text())
    assert len(meta["resumed"]) == 1 and meta["status"] == "complete"  # the restarted group resumed the run
    assert _summary(run) == _summary(root / "whole")
    assert _max_diff(_state(run)["hypernet"], _state(root / "whole")["hypernet"]) == 0.0
    assert (run / "metrics.csv").read_text() == (root / "whole" / "metrics.csv").read_text()


def test_a_run_stopped_on_two_processes_resumes_on_one(short_runs):
    """The checkpoint holds the one replicated state: another world size continues it."""
    from modnas.search import resume_search

    root, home = short_runs["root"], short_runs["home"]
    config = _write_config(root / "three_epochs.yaml", {**SHORT, "epochs": 3})
    run = root / "stopped"
    proc = _launch(config, run, home, "--standalone", "--nproc-per-node", "2")
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # torchrun stops its workers
    proc.communicate(timeout=120)
    if (run / "summary.json").exists():
        pytest.skip("the run finished before it could be stopped")  # a very fast machine: nothing to resume
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = resume_search(run)
    finally:
        torch.set_num_threads(threads)
    assert summary["epoch"] == 3
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["world_size"] == 2 and [r["world_size"] for r in meta["resumed"]] == [1]
    assert meta["status"] == "complete"
