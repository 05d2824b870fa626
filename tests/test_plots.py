"""``modnas plot``: figures of a run directory (a small synthetic run, so the tests stay fast)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from modnas import plots
from modnas.commands.plot import plot_command
from modnas.errors import ModnasError
from modnas.hardware.devices import PROTOCOL_DEVICES, TEST_DEVICES
from modnas.search.run import FRONT_FIELDS, METRIC_FIELDS
from modnas.spaces.nb201 import index_to_string

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EPOCHS = 3
RAYS = 4
DEVICES = ["fpga", "1080ti_1"]


def _is_png(path: Path) -> bool:
    data = path.read_bytes()
    return len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)


def _write_run(run: Path, epochs: int = EPOCHS) -> Path:
    """metrics.csv and fronts.csv as `modnas search` writes them, for all 19 devices and ``epochs`` epochs."""
    rng = np.random.default_rng(0)
    run.mkdir(parents=True)
    metrics, fronts = [], []
    for epoch in range(1, epochs + 1):
        for device in PROTOCOL_DEVICES:
            split = "test" if device in TEST_DEVICES else "train"
            metrics.append([epoch, device, split, 0.85 + 0.02 * epoch + rng.uniform(0, 0.01), 0.02, 3])
            for ray in range(RAYS):
                w = 1.0 - ray / (RAYS - 1) if RAYS > 1 else 1.0
                arch = index_to_string(int(rng.integers(0, 15625)))
                fronts.append([epoch, device, ray, f"{w:.6f};{1 - w:.6f}", arch])
    for name, fields, rows in (("metrics.csv", METRIC_FIELDS, metrics), ("fronts.csv", FRONT_FIELDS, fronts)):
        with open(run / name, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(fields)
            writer.writerows(rows)
    return run


def _expected(out: Path, devices: list[str]) -> list[Path]:
    return [out / "fronts" / f"{d}.png" for d in devices] + [out / "hv_per_epoch.png", out / "radar_hv.png"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("plot")(plot_command)
    app.command("noop")(lambda: None)  # two commands, so `plot` is a sub-command as under `modnas`
    return app


def test_plot_command_writes_valid_pngs_into_run_dir_plots(tmp_path):
    run = _write_run(tmp_path / "run")
    args = ["plot", str(run)] + [a for d in DEVICES for a in ("--device", d)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    out = run / "plots"
    expected = _expected(out, DEVICES)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(expected)
    assert all(_is_png(p) for p in expected)
    assert "wrote 4 PNGs" in result.output


def test_refuses_to_overwrite_unless_forced(tmp_path):
    run = _write_run(tmp_path / "run")
    out = tmp_path / "figs"
    written = plots.plot_run(run, out, devices=["fpga"])
    assert written == _expected(out, ["fpga"])
    before = {p: p.stat().st_mtime_ns for p in written}
    result = CliRunner().invoke(_app(), ["plot", str(run), "--out", str(out), "--device", "fpga"])
    assert result.exit_code == 2
    assert "already exist" in result.output and "--force" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in written} == before
    result = CliRunner().invoke(_app(), ["plot", str(run), "--out", str(out), "--device", "fpga", "--force"])
    assert result.exit_code == 0, result.output
    assert all(_is_png(p) for p in written)
    assert not list(out.rglob(".*.png"))  # no temporary files left behind


def test_epoch_selection(tmp_path, monkeypatch):
    run = _write_run(tmp_path / "run")
    data = plots.load_run(run)
    assert data.complete_epochs == [1, 2, 3]
    assert plots.select_epoch(data, None) == 3
    assert plots.select_epoch(data, 2) == 2
    with pytest.raises(ModnasError, match=r"epoch 7 is not a complete epoch.*complete epochs: 1-3"):
        plots.select_epoch(data, 7)
    assert plots.select_devices(data, 3, None) == list(PROTOCOL_DEVICES)

    seen = {}
    real = plots.plot_front

    def spy(path, **kwargs):
        seen[kwargs["device"]] = kwargs
        return real(path, **kwargs)

    monkeypatch.setattr(plots, "plot_front", spy)
    result = CliRunner().invoke(_app(), ["plot", str(run), "--epoch", "2", "--device", "fpga", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    kwargs = seen["fpga"]
    assert kwargs["epoch"] == 2 and kwargs["hv"] == pytest.approx(data.hv[2]["fpga"])
    # the chosen architectures are epoch 2's rays, looked up in the tables
    from modnas.spaces.nb201 import to_index
    from modnas.tables.nb201 import nb201_tables

    archs = [a for _, _, a in sorted(data.rays[2]["fpga"])]
    idx = to_index(archs)
    expected = np.column_stack([100.0 - nb201_tables.accuracy(idx), nb201_tables.latency("fpga", idx)])
    np.testing.assert_allclose(kwargs["chosen"], expected)
    assert kwargs["true_front"].shape[1] == 2 and (kwargs["cloud"][:, 0] < 90).all()
    assert len(kwargs["cloud"]) > 10000

    result = CliRunner().invoke(_app(), ["plot", str(run), "--epoch", "9", "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "epoch 9 is not a complete epoch" in result.output
    assert not (tmp_path / "p").exists()


def test_truncated_last_epoch_is_skipped(tmp_path):
    run = _write_run(tmp_path / "run")
    # an interrupted run: epoch 3's fronts cut off inside an arch string of the last device
    text = (run / "fronts.csv").read_text()
    (run / "fronts.csv").write_text(text[: len(text) - 20])
    data = plots.load_run(run)
    assert data.complete_epochs == [1, 2]
    assert plots.select_epoch(data, None) == 2


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing", "does not exist"),
        ("empty", "has no metrics.csv"),
        ("no_fronts", "has no fronts.csv"),
        ("header_only", "truncated"),
        ("bad_columns", "lacks the columns"),
    ],
)
def test_bad_run_dir_is_one_line(tmp_path, damage, message):
    run = tmp_path / "run"
    if damage == "empty":
        run.mkdir()
    elif damage != "missing":
        _write_run(run, epochs=1)
        if damage == "no_fronts":
            (run / "fronts.csv").unlink()
        elif damage == "header_only":
            lines = (run / "metrics.csv").read_text().splitlines()
            (run / "metrics.csv").write_text("\n".join(lines[:5]) + "\n")
        elif damage == "bad_columns":
            (run / "metrics.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(_app(), ["plot", str(run)])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (run / "plots").exists()


def test_unknown_or_absent_device(tmp_path):
    run = _write_run(tmp_path / "run", epochs=1)
    result = CliRunner().invoke(_app(), ["plot", str(run), "--device", "fpgaa"])
    assert result.exit_code == 2 and "unknown device 'fpgaa'" in result.output
    result = CliRunner().invoke(_app(), ["plot", str(run), "--device", "2080ti_1"])
    assert result.exit_code == 2 and "not in run" in result.output
    assert not (run / "plots").exists()


def test_pure_plot_functions(tmp_path):
    paths = [
        plots.plot_hv_per_epoch(
            tmp_path / "hv.png", epochs=[1], hv={"fpga": [0.9], "pixel2": [0.95]}, splits={"fpga": "test"}
        ),
        plots.plot_radar(tmp_path / "radar.png", devices=["a", "b", "c"], hv=[0.9, 0.8, 0.95],
                         true_hv=[0.97, 0.96, 0.99], epoch=5),
        plots.plot_front(tmp_path / "sub" / "front.png", device="x", split="train", epoch=1,
                         cloud=np.array([[20.0, 3.0], [10.0, 5.0]]), true_front=np.array([[10.0, 5.0]]),
                         chosen=np.array([[10.0, 5.0]])),
    ]
    assert all(_is_png(p) for p in paths)
    with pytest.raises(ValueError):
        plots.plot_radar(tmp_path / "r2.png", devices=["a"], hv=[0.9, 0.8], true_hv=[1.0], epoch=1)
