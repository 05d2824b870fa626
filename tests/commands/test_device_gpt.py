"""``modnas device measure --space gpt-tiny``: a measured per-block latency table as a device's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from modnas.commands.device import app
from modnas.errors import ModnasError
from modnas.hardware.profiles import DeviceProfile, ProfileStore, load_profile, parse_profile
from modnas.problem import get_problem
from modnas.spaces.gpt.arch import GPT_TINY, GPTArch
from modnas.spaces.gpt.latency import LatencyTable, entry_keys

runner = CliRunner()
FAST = ("--space", "gpt-tiny", "--sequence-length", "16", "--batch-size", "1", "--repeats", "2", "--warmup", "1")


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    """Own MODNAS_HOME and working directory per test; the gpt-tiny device set is restored afterwards."""
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    registry = get_problem("gpt-tiny").devices
    custom, unavailable, loaded = dict(registry._custom), dict(registry._unavailable), set(registry._loaded_roots)
    yield tmp_path / "home"
    registry._custom.clear()
    registry._custom.update(custom)
    registry._unavailable.clear()
    registry._unavailable.update(unavailable)
    registry._loaded_roots.clear()
    registry._loaded_roots.update(loaded)


def run(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message


def archs(keys) -> list[GPTArch]:
    return [GPTArch.from_key(k, GPT_TINY) for k in keys]


def test_measure_gpt_tiny_registers_its_table_as_the_ground_truth(home, tmp_path):
    result = run("measure", "--name", "my_cpu", *FAST, "--extra", "3")
    assert result.exit_code == 0, result.output
    assert "latency table: cpu-b1-s16-fp32, 60 parts" in result.stdout and "registered" in result.stdout
    profile = load_profile(tmp_path / "my_cpu.json")
    table = profile.latency_table
    assert set(table.latency_ms) == set(entry_keys(GPT_TINY)) and table.setting.sequence_length == 16
    assert all(v > 0 for v in table.latency_ms.values())
    problem = get_problem("gpt-tiny")
    references = list(problem.space.reference_architectures())
    assert list(profile.latencies_ms)[:10] == references and len(profile.latencies_ms) == 13
    keys = list(profile.latencies_ms)
    assert list(profile.latencies_ms.values()) == table.predict(archs(keys)).tolist()
    assert profile.reference_latencies == table.predict(archs(references)).tolist()
    assert ProfileStore().load("my_cpu") == profile

    # the registered device takes the table as the latency of every architecture, not only the measured ones
    device = problem.devices.get("my_cpu")
    assert device.has_table and device.split == "custom"
    unseen = next(k for k in problem.space.keys(problem.space.sample(20, np.random.default_rng(7))) if k not in keys)
    got = problem.truth.evaluate([unseen], "my_cpu", ("latency",))
    assert got.shape == (1, 1) and got[0, 0] == table.predict(archs([unseen]))[0]
    assert problem.true_latencies(device, [unseen])[0] == got[0, 0]
    assert problem.truth.supports("latency", "my_cpu") and not problem.truth.supports("energy", "my_cpu")
    with pytest.raises(ModnasError, match="no energy table"):
        problem.truth.evaluate([unseen], "my_cpu", ("energy",))

    # the written file carries the table into another store
    (tmp_path / "home").rename(tmp_path / "old_home")
    assert run("add", str(tmp_path / "my_cpu.json")).exit_code == 0
    assert ProfileStore().load("my_cpu").latency_table.latency_ms == table.latency_ms


def test_measure_gpt_validate_and_bf16_on_a_cpu(home, tmp_path):
    args = ("--space", "gpt-tiny", "--sequence-length", "4", "--repeats", "1", "--warmup", "0")
    result = run("measure", "--name", "bf", *args, "--dtype", "bf16", "--threads", "1", "--validate", "3",
                 "--no-register")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Spearman" in result.stdout
    table = load_profile(tmp_path / "bf.json").latency_table
    assert table.setting.label == "cpu-b1-s4-bf16-t1"
    check = table.meta["validation"]
    assert check["count"] == 3 and {"spearman", "kendall", "mape_pct"} <= set(check)
    assert ProfileStore().names() == ()


def no_timing(*args, **kwargs):
    pytest.fail("measured")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--space", "gpt-tiny", "--dtype", "int8"), ("--dtype", "int8")),
        (("--space", "gpt-tiny", "--sequence-length", "129"), ("--sequence-length 129", "context of 128")),
        (("--space", "gpt-s", "--sequence-length", "1025"), ("--sequence-length 1025", "context of 1024")),
        (("--space", "gpt-tiny", "--sequence-length", "0"), ("sequence length",)),
        (("--space", "gpt-tiny", "--threads", "0"), ("threads",)),
        (("--space", "gpt-tiny", "--batch-size", "0"), ("batch size",)),
        (("--space", "gpt-tiny", "--repeats", "0"), ("--repeats",)),
        (("--space", "gpt-tiny", "--extra", "-1"), ("--extra",)),
        (("--space", "gpt-tiny", "--validate", "2"), ("--validate",)),
        (("--sequence-length", "16"), ("--sequence-length", "GPT spaces", "nb201")),
        (("--dtype", "bf16"), ("--dtype", "GPT spaces")),
        (("--threads", "2"), ("--threads", "GPT spaces")),
        (("--validate", "5"), ("--validate", "GPT spaces")),
        (("--space", "gpt-tiny", "--name", "epyc-b1-s128-t1"), ("epyc-b1-s128-t1", "built-in")),
    ],
)
def test_bad_gpt_options_are_one_line_and_exit_2(args, needles, monkeypatch):
    monkeypatch.setattr("modnas.spaces.gpt.latency.measure_table", no_timing)
    monkeypatch.setattr("modnas.hardware.measure.time_forward_passes", no_timing)
    name = () if "--name" in args else ("--name", "x")
    assert_user_error(run("measure", *name, *args), *needles)
    assert not Path("x.json").exists()


def test_gpt_cuda_without_cuda_and_existing_files_are_refused(home, tmp_path, monkeypatch):
    monkeypatch.setattr("modnas.spaces.gpt.latency.measure_table", no_timing)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_user_error(run("measure", "--name", "gpu", "--space", "gpt-tiny", "--cuda"), "CUDA")
    (tmp_path / "mine.json").write_text("{}")
    assert_user_error(run("measure", "--name", "mine", "--space", "gpt-tiny"), "mine.json", "--force")
    assert (tmp_path / "mine.json").read_text() == "{}"


def test_a_profile_table_must_match_its_latencies_and_space(home, tmp_path):
    result = run("measure", "--name", "t", "--space", "gpt-tiny", "--sequence-length", "4", "--repeats", "1",
                 "--warmup", "0", "--no-register")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "t.json").read_text())
    assert parse_profile(data).to_json() == data
    first = next(iter(data["latencies_ms"]))
    edited = dict(data, latencies_ms=dict(data["latencies_ms"], **{first: data["latencies_ms"][first] * 2}))
    edited.pop("embedding")
    with pytest.raises(ModnasError, match="the table sums to"):
        parse_profile(edited)
    table = LatencyTable.from_json(data["table"])
    table.latency_ms.popitem()
    with pytest.raises(ModnasError, match="no latency for 1 parts"):
        parse_profile(dict(data, table=table.to_json()))
    # an NB201 profile takes no table, and one without a table writes none
    nb201 = {"name": "n", "latencies_ms": {k: 1.0 + i for i, k in enumerate(
        get_problem("nb201").space.reference_architectures())}}  # fmt: skip
    assert "table" not in DeviceProfile(**nb201).to_json()
    with pytest.raises(ModnasError, match="GPT space"):
        DeviceProfile(**nb201, table=data["table"])
