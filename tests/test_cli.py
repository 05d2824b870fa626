"""The command line: outputs of the foundation commands and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from modnas.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_true_front_fpga_json_reports_protocol_hypervolume():
    result = run("true-front", "--device", "fpga", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert round(data["hv"], 4) == 0.9742
    assert data["device"] == "fpga" and data["split"] == "test"
    assert data["n_front"] == len(data["front"]) > 0
    errors = [row["error"] for row in data["front"]]
    assert errors == sorted(errors)


def test_true_front_1080ti_1_hypervolume():
    data = json.loads(run("true-front", "--device", "1080ti_1", "--json").stdout)
    assert round(data["hv"], 4) == 0.9458


def test_true_front_all_prints_mean_over_19_devices():
    result = run("true-front", "--all", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert len(data["devices"]) == 19
    hvs = [row["hv"] for row in data["devices"]]
    assert data["mean_hv"] == pytest.approx(sum(hvs) / 19)
    table = run("true-front", "--all")
    assert "mean over 19" in table.stdout


def test_true_front_three_objectives_only_on_energy_devices():
    data = json.loads(run("true-front", "--all", "--objectives", "error,latency,energy", "--json").stdout)
    assert {row["device"] for row in data["devices"]} == {"fpga", "eyeriss"}


def test_true_front_preference_picks_the_scalarised_optimum():
    front = json.loads(run("true-front", "--device", "fpga", "--json").stdout)["front"]
    accurate = json.loads(run("true-front", "--device", "fpga", "--preference", "1,0", "--json").stdout)
    fast = json.loads(run("true-front", "--device", "fpga", "--preference", "0,1", "--json").stdout)
    assert accurate["error"] == min(r["error"] for r in front)
    assert fast["latency"] == min(r["latency"] for r in front)
    mid = json.loads(run("true-front", "--device", "fpga", "--preference", "0.5,0.5", "--json").stdout)
    best = min(front, key=lambda r: 0.5 * r["error_normalised"] + 0.5 * r["latency_normalised"])
    assert mid["arch_str"] == best["arch_str"] and mid["preference"] == [0.5, 0.5]


def test_devices_lists_protocol_split_with_embeddings():
    result = run("devices", "--split", "protocol", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 19
    assert sum(r["split"] == "train" for r in rows) == 13
    assert all(len(r["embedding"]) == 10 for r in rows)
    assert "fpga" in run("devices").stdout


def test_score_command_scores_a_file(tmp_path):
    true = json.loads(run("true-front", "--device", "fpga", "--json").stdout)
    front = true["front"]
    path = tmp_path / "archs.txt"
    path.write_text("\n".join(row["arch_str"] for row in front) + "\n")
    data = json.loads(run("score", str(path), "--device", "fpga", "--json").stdout)
    assert data[0]["hv"] == pytest.approx(true["hv"])
    csv_path = tmp_path / "archs.csv"
    csv_path.write_text("arch_str,note\n" + "\n".join(f"{row['arch_str']},x" for row in front[:3]) + "\n")
    rows = json.loads(run("score", str(csv_path), "--device", "fpga", "--json").stdout)
    assert rows[0]["n_candidates"] == 3


def test_arch_command_reports_table_values():
    data = json.loads(run("arch", "6111", "--json").stdout)
    assert round(data["cifar10_test_acc_200ep"], 4) == 94.3733
    assert data["arch_str"].startswith("|nor_conv_3x3~0|")
    missing = json.loads(run("arch", "7581", "--json").stdout)
    assert missing["hwnasbench"]["fpga_energy"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("true-front", "--device", "fpgaa"), "fpgaa"),
        (("true-front",), "--device"),
        (("true-front", "--device", "fpga", "--all"), "--device"),
        (("true-front", "--device", "fpga", "--objectives", "error,speed"), "speed"),
        (("true-front", "--device", "1080ti_1", "--objectives", "error,latency,energy"), "1080ti_1"),
        (("devices", "--split", "weird"), "weird"),
        (("arch", "|nor_conv_3x3~0|+|none~0|"), "malformed"),
        (("arch", "|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "conv_5x5"),
        (("arch", "15625"), "15625"),
        (("true-front", "--device", "fpga", "--preference", "0.5,-0.5"), "negative"),
        (("true-front", "--device", "fpga", "--preference", "0.2,0.2"), "sum to 1"),
        (("true-front", "--device", "fpga", "--preference", "0.2,0.3,0.5"), "3 entries"),
        (("true-front", "--device", "fpga", "--preference", "nan,1"), "NaN"),
        (("true-front", "--device", "fpga", "--preference", "a,b"), "a,b"),
        (("true-front", "--all", "--preference", "0.5,0.5"), "--device"),
        (("arch", "--", "-1"), "-1"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, needle):
    result = run(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert needle in message


def test_score_names_the_bad_line(tmp_path):
    path = tmp_path / "archs.txt"
    path.write_text("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n|bogus|\n")
    result = run("score", str(path), "--device", "fpga")
    assert result.exit_code == 2
    assert "entry 2" in result.stderr
    missing = run("score", str(tmp_path / "nope.txt"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_version_prints_the_version():
    from modnas import __version__

    result = run("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"modnas {__version__}"


def test_python_m_modnas_runs_the_command_line():
    import os
    import subprocess
    import sys
    from pathlib import Path

    import modnas

    env = {**os.environ, "PYTHONPATH": str(Path(modnas.__file__).parents[1])}
    for args, needle in ((["--help"], "Usage: modnas"), (["--version"], modnas.__version__)):
        done = subprocess.run(
            [sys.executable, "-m", "modnas", *args], capture_output=True, text=True, env=env, check=False
        )
        assert done.returncode == 0, done.stderr
        assert needle in done.stdout


def test_a_corrupt_stored_profile_breaks_only_its_own_device(tmp_path, monkeypatch):
    import os

    # the NB201 device set is reset after each test (conftest)
    store = tmp_path / "devices"
    store.mkdir()
    (store / "broken_phone.json").write_text('{"name": "broken_phone", ')
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path))
    assert os.environ["MODNAS_HOME"] == str(tmp_path)
    result = run("true-front", "--device", "fpga", "--json")
    assert result.exit_code == 0, result.output
    archs = tmp_path / "a.txt"
    archs.write_text("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|\n")
    result = run("predictor", "predict", "--device", "broken_phone", "--archs", str(archs))
    assert result.exit_code == 2
    assert "broken_phone.json" in result.stderr and "Traceback" not in result.output


def test_error_messages_keep_bracketed_values():
    """Console markup ate "[nan, 1.]" from the message: it read "preference  contains NaN"."""
    result = run("true-front", "--device", "fpga", "--preference", "nan,1")
    assert result.exit_code == 2
    assert "preference [nan, 1.] contains NaN" in result.stderr


def test_an_architecture_file_that_is_a_directory_is_named_as_such(tmp_path):
    result = run("predictor", "predict", "--device", "fpga", "--archs", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory" in result.stderr and "does not exist" not in result.stderr


@pytest.mark.parametrize("columns", ["80", "250"])
def test_true_front_and_arch_never_wrap_or_cut_architecture_strings(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    front = json.loads(run("true-front", "--device", "fpga", "--json").stdout)["front"]
    table = run("true-front", "--device", "fpga").stdout
    assert "…" not in table
    for row in front:
        assert any(row["arch_str"] in line for line in table.splitlines()), row["arch_str"]
    arch = front[0]["arch_str"]
    assert arch in run("arch", arch).stdout.splitlines()[0]


def _command_paths(group, prefix=()):
    import typer.core

    yield prefix
    for name, command in group.commands.items():
        if isinstance(command, typer.core.TyperGroup):
            yield from _command_paths(command, (*prefix, name))
        else:
            yield (*prefix, name)


def test_help_shows_no_type_after_plain_flags():
    """Typer printed '<bool>' after every flag (--json, --force, --help), as if it took a value."""
    import typer.main

    paths = list(_command_paths(typer.main.get_command(app)))
    assert ("device", "measure") in paths and ("train",) in paths
    for path in paths:
        result = run(*path, "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, path
        assert "--help" in result.output


def test_search_set_overrides_any_config_field(tmp_path, monkeypatch):
    """--set KEY=VALUE (dotted, repeatable), validated by the config model like the YAML file."""
    import modnas.search

    seen = {}

    def fake_search(config, run_dir, progress=None, callbacks=()):
        seen["config"] = config
        return {"epoch": 0}

    monkeypatch.setattr(modnas.search, "search", fake_search)
    out = str(tmp_path / "run")
    args = ["search", "--out", out, "--epochs", "2", "--set", "error_predictor.steps=300", "--set", "lr=0.002",
            "--set", "train_devices=[fpga, eyeriss]", "--set", "oneshot.C=4", "--json"]  # fmt: skip
    result = run(*args)
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.error_predictor.steps == 300 and config.lr == 0.002 and config.epochs == 2
    assert config.train_devices == ("fpga", "eyeriss") and config.oneshot.C == 4
    for bad, needle in (
        (["--set", "error_predictor.stepz=3"], "unknown config key 'error_predictor.stepz'"),
        (["--set", "epochs=true"], "config epochs"),
        (["--set", "epochs"], "KEY=VALUE"),
        (["--epochs", "2", "--set", "epochs=3"], "give it once"),
        (["--set", "seed=1", "--set", "seed=2"], "twice"),
        (["--resume", out, "--set", "seed=1"], "drop seed"),
    ):
        result = run("search", "--out", out, *bad) if "--resume" not in bad else run("search", *bad)
        assert result.exit_code == 2, (bad, result.output)
        assert needle in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("columns", ["40", "60", "80", "120", "250"])
def test_arch_tables_cut_no_cell_at_any_width(monkeypatch, capsys, columns):
    """rich squeezed a column below its longest word ('dominate…') when the table was wider than the console."""
    from modnas.commands.common import print_arch_table
    from modnas.tables.nb201 import nb201_tables

    monkeypatch.setenv("COLUMNS", columns)
    archs = [nb201_tables.arch_strings[i] for i in (0, 1462, 6111)]
    header = [("arch_str", "left"), ("pref (err,lat)", "right"), ("pred. error %", "right"), ("note", "left")]
    rows = [[a, "0.06,0.94", "13.49", "dominated, error queried"] for a in archs]
    print_arch_table("a front", header, rows, caption="error queried: the search read this architecture's error")
    out = capsys.readouterr().out
    assert "…" not in out
    assert all(any(a in line for line in out.splitlines()) for a in archs)
    assert "dominated," in out and "0.06,0.94" in out
