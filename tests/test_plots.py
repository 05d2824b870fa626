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
from modnas.rundir import FRONT_FIELDS, METRIC_FIELDS
from modnas.spaces.nb201 import index_to_string
from modnas.spaces.nb201.devices import PROTOCOL_DEVICES, TEST_DEVICES

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


def _expected(out: Path, devices: list[str], per_device: bool = False) -> list[Path]:
    paths = [out / "fronts" / f"{d}.png" for d in devices]
    paths += [out / "hv_per_epoch.png", out / "hv_per_device.png"]
    return paths + ([out / "hv_per_epoch_devices.png"] if per_device else [])


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


def test_per_device_option_adds_one_figure(tmp_path, monkeypatch):
    run = _write_run(tmp_path / "run")
    seen = {}
    real = plots.plot_hv_per_epoch_devices

    def spy(path, **kwargs):
        seen.update(kwargs)
        return real(path, **kwargs)

    monkeypatch.setattr(plots, "plot_hv_per_epoch_devices", spy)
    out = tmp_path / "o"
    args = ["plot", str(run), "--out", str(out), "--per-device"] + [a for d in DEVICES for a in ("--device", d)]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    expected = _expected(out, DEVICES, per_device=True)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(expected)
    assert all(_is_png(p) for p in expected) and "wrote 5 PNGs" in result.output
    assert list(seen["hv"]) == DEVICES and seen["epochs"] == [1, 2, 3]
    assert set(seen["true_hv"]) == set(DEVICES)
    # without the option the per-device figure is neither drawn nor expected
    assert not (tmp_path / "p" / "hv_per_epoch_devices.png").exists()
    assert plots.output_paths(out, DEVICES) == _expected(out, DEVICES)


def test_hv_per_epoch_draws_the_mean_of_each_split(tmp_path, monkeypatch):
    """One line per split (its mean) and a band (its min-max), whatever the number of devices."""
    drawn: dict[str, list] = {"plot": [], "band": []}
    from matplotlib.axes import Axes

    real_plot, real_fill = Axes.plot, Axes.fill_between

    def plot(self, *args, **kwargs):
        drawn["plot"].append((args, kwargs))
        return real_plot(self, *args, **kwargs)

    def fill(self, x, low, high, **kwargs):
        drawn["band"].append((np.asarray(low), np.asarray(high)))
        return real_fill(self, x, low, high, **kwargs)

    monkeypatch.setattr(Axes, "plot", plot)
    monkeypatch.setattr(Axes, "fill_between", fill)
    hv = {"a": [0.5, 0.6], "b": [0.7, 0.8], "c": [0.9, 0.9]}
    splits = {"a": "seen", "b": "seen", "c": "new"}
    plots.plot_hv_per_epoch(tmp_path / "hv.png", epochs=[1, 2], hv=hv, splits=splits)
    means = {kw["label"].split(":")[0]: np.asarray(args[1]) for args, kw in drawn["plot"] if "label" in kw}
    np.testing.assert_allclose(means["seen"], [0.6, 0.7])
    np.testing.assert_allclose(means["new"], [0.9, 0.9])
    np.testing.assert_allclose(means["all 3 devices"], [0.7, 0.7666666], rtol=1e-6)
    assert len(drawn["band"]) == 1  # only a split with several devices has a band
    np.testing.assert_allclose(drawn["band"][0][0], [0.5, 0.6])
    np.testing.assert_allclose(drawn["band"][0][1], [0.7, 0.8])


def test_epoch_axis_has_integer_ticks(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    x = np.arange(1, 4, dtype=float)
    ax.plot(x, x)
    plots._integer_ticks(ax, x)
    ticks = [t for t in ax.get_xticks() if x.min() - 0.5 <= t <= x.max() + 0.5]
    assert ticks and all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize("n_devices", [1, 2, 19, 40])
def test_hv_per_device_takes_any_number_of_devices_and_split_names(tmp_path, n_devices):
    devices = [f"dev{i}" for i in range(n_devices)]
    splits = {d: ("seen", "unseen", "other")[i % 3] for i, d in enumerate(devices)}
    true = np.linspace(0.9, 0.99, n_devices)
    series = {"run": true - np.geomspace(1e-3, 0.2, n_devices), "baseline": true - 0.05}
    series["baseline"][0] = true[0]  # as good as the true front: drawn at the axis' floor
    path = plots.plot_hv_per_device(tmp_path / f"d{n_devices}.png", devices=devices, hv=series, true_hv=true,
                                    splits=splits)
    assert _is_png(path)
    assert plots.plot_hv_per_epoch_devices(tmp_path / f"e{n_devices}.png", epochs=[1, 2],
                                           hv={d: [0.8, 0.9] for d in devices}, splits=splits).is_file()


def test_gap_dots_put_each_device_on_its_row_grouped_by_split():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    devices = ["a", "b", "c"]
    floor, clipped = plots.draw_hv_gap_dots(ax, devices=devices, series={"m": [0.9, 0.5, 0.99]},
                                            true_hv=[0.95, 0.6, 0.99], splits={"a": "x", "b": "y", "c": "x"})
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "c", "b"]  # split x first, then y
    (dots,) = ax.collections[-1:]
    np.testing.assert_allclose(dots.get_offsets(), [[0.05, 0], [0.1, 2], [floor, 1]], atol=1e-12)
    assert clipped and floor == pytest.approx(0.05)  # 1, 2 or 5 times a power of ten, <= the smallest gap
    label = plots.gap_axis_label(floor, clipped)
    assert "smaller is better" in label and "0.05 or less" in label
    assert "or less" not in plots.gap_axis_label(floor, False)


@pytest.mark.parametrize(("gaps", "floor"), [([0.0023, 0.1], 0.002), ([0.19], 0.1), ([0.01], 0.01),
                                             ([0.0, -0.1], 1e-4), ([1e-9], 1e-6), ([0.7, float("nan")], 0.5)])
def test_gap_floor(gaps, floor):
    assert plots.gap_floor(gaps) == pytest.approx(floor)


def test_pure_plot_functions(tmp_path):
    paths = [
        plots.plot_hv_per_epoch(
            tmp_path / "hv.png", epochs=[1], hv={"fpga": [0.9], "pixel2": [0.95]}, splits={"fpga": "test"}
        ),
        plots.plot_hv_per_device(tmp_path / "dots.png", devices=["a", "b", "c"], hv={"run": [0.9, 0.8, 0.95]},
                                 true_hv=[0.97, 0.96, 0.99]),
        plots.plot_front(tmp_path / "sub" / "front.png", device="x", split="train", epoch=1,
                         cloud=np.array([[20.0, 3.0], [10.0, 5.0]]), true_front=np.array([[10.0, 5.0]]),
                         chosen=np.array([[10.0, 5.0]])),
    ]
    assert all(_is_png(p) for p in paths)
    with pytest.raises(ValueError):
        plots.plot_hv_per_device(tmp_path / "r2.png", devices=["a"], hv={"run": [0.9, 0.8]}, true_hv=[1.0])
