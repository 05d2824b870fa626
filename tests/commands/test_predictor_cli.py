"""``modnas predictor ...``: predict on built-in and custom devices, evaluate rows, training guard rails."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from modnas.cli import app
from modnas.tables.nb201 import nb201_tables

runner = CliRunner()
ARCHS = [nb201_tables.arch_strings[i] for i in (0, 6111, 1462)]


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(ARCHS) + "\n")
    return path


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_latency_on_a_builtin_device(arch_file):
    result = runner.invoke(app, ["predictor", "predict", "--device", "fpga", "--archs", str(arch_file)])
    assert result.exit_code == 0, result.output
    out = rows(result.stdout)
    assert [r["arch_str"] for r in out] == ARCHS
    values = [float(r["latency_ms"]) for r in out]
    assert all(0 < v < 20 for v in values)  # fpga latencies are 1-9 ms
    assert values[2] > values[1]  # all-conv3x3 is slower than the best cell on fpga


def test_predict_energy_writes_a_file(arch_file, tmp_path):
    out = tmp_path / "energy.csv"
    result = runner.invoke(
        app, ["predictor", "predict", "--device", "eyeriss", "--archs", str(arch_file), "--metric", "energy", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    got = rows(out.read_text())
    assert float(got[0]["energy_mj"]) == pytest.approx(float(nb201_tables.energy("eyeriss", 0)), rel=1e-5)
    again = runner.invoke(
        app, ["predictor", "predict", "--device", "eyeriss", "--archs", str(arch_file), "--metric", "energy", "--out", str(out)]
    )
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_predict_on_a_custom_device_with_extra_measurements(arch_file, tmp_path):
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES

    true = nb201_tables.full_column("latency", "raspi4")
    lines = ["arch_str,latency_ms"] + [
        f"{nb201_tables.arch_strings[i]},{true[i]}" for i in list(REFERENCE_ARCH_INDICES) + [5, 50, 500]
    ]
    csv_path = tmp_path / "pi.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    added = runner.invoke(app, ["device", "add", "--name", "my_pi", "--latencies", str(csv_path)])
    assert added.exit_code == 0, added.output
    result = runner.invoke(app, ["predictor", "predict", "--device", "my_pi", "--archs", str(arch_file)])
    assert result.exit_code == 0, result.output
    assert "adapted to 3 extra measurements" in result.stderr
    assert len(rows(result.stdout)) == 3


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--device", "nope"], "nope"),
        (["--device", "fpga", "--metric", "power"], "power"),
        (["--device", "1080ti_1", "--metric", "energy"], "1080ti_1"),
    ],
)
def test_predict_bad_input(arch_file, extra, needle):
    result = runner.invoke(app, ["predictor", "predict", "--archs", str(arch_file), *extra])
    assert result.exit_code == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_evaluate_json_rows():
    result = runner.invoke(
        app, ["predictor", "evaluate", "--device", "fpga", "--shots", "10", "--seeds", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(r["device"], r["split"], r["setting"]) for r in data] == [("fpga", "test", "zero-shot"), ("fpga", "test", "10-shot")]
    assert set(data[0]) == {"device", "split", "setting", "spearman", "kendall"}
    assert data[0]["spearman"] > 0.9


def test_evaluate_rejects_bad_shots():
    result = runner.invoke(app, ["predictor", "evaluate", "--shots", "ten"])
    assert result.exit_code == 2 and "--shots" in result.stderr


def test_train_refuses_to_overwrite(tmp_path):
    out = tmp_path / "p.pt"
    out.write_bytes(b"mine")
    result = runner.invoke(app, ["predictor", "train", "--out", str(out), "--steps", "1"])
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert out.read_bytes() == b"mine"


def test_predict_and_train_refuse_an_unwritable_out_before_working(arch_file, tmp_path, monkeypatch):
    (tmp_path / "plain_file").write_text("")
    blocked = tmp_path / "plain_file" / "sub"
    monkeypatch.setattr("modnas.hardware.training.train_predictor", lambda *a, **k: pytest.fail("trained"))
    for args in (
        ["predictor", "predict", "--device", "fpga", "--archs", str(arch_file), "--out", str(blocked / "p.csv")],
        ["predictor", "train", "--out", str(blocked / "p.pt"), "--steps", "1"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "cannot write" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_train_keeps_the_model_when_the_write_fails(tmp_path, monkeypatch):
    import errno
    import tempfile

    from modnas.hardware import predictor as predictor_module

    real_save = predictor_module.atomic_torch_save
    out = tmp_path / "p.pt"

    def full_disk_at_out(payload, target):
        if target == out:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real_save(payload, target)

    monkeypatch.setattr(predictor_module, "atomic_torch_save", full_disk_at_out)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = runner.invoke(app, ["predictor", "train", "--out", str(out), "--steps", "1", "--batch-size", "8"])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "No space left on device" in line and "kept in" in line
    (kept,) = tmp_path.glob("modnas-predictor-*/p.pt")
    assert str(kept) in line
    predictor_module.load_predictor(kept)
