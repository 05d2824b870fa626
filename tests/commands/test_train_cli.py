"""``modnas train``: trains an exported architecture, prints the accuracy, refuses bad input in one line."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from modnas.cli import app

runner = CliRunner()
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
FAST = [
    "--data", "digits", "--epochs", "1", "--channels", "4", "--cells-per-stage", "1", "--train-limit", "128",
    "--batch-size", "32",
]


def test_train_an_exported_architecture(tmp_path):
    exported = tmp_path / "arch.json"
    exported.write_text(json.dumps({"arch_str": ARCH, "device": "pixel3"}))
    out = tmp_path / "trained"
    result = runner.invoke(app, ["train", str(exported), *FAST, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["arch_str"] == ARCH and data["epochs"] == 1 and data["source"]["device"] == "pixel3"
    assert (out / "result.json").is_file() and (out / "checkpoint.pt").is_file()
    # no terminal here: one plain line per epoch on stderr, stdout stays JSON
    assert re.search(r"^epoch 1/1: train loss \d+\.\d{4}, train [\d.]+ %, test [\d.]+ %; [\d.]+ s$", result.stderr, re.MULTILINE)
    again = runner.invoke(app, ["train", ARCH, *FAST, "--out", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output


def test_bad_input_is_one_line(tmp_path):
    for args, needle in (
        (["|bad~0|"], "malformed"),
        ([ARCH, "--data", "mnist"], "unknown dataset"),
        ([ARCH, "--data", "fashion-mnist", "--data-dir", str(tmp_path)], "dataset-fashion-mnist"),
    ):
        result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "o")])
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output


def test_old_option_names_still_work_with_a_deprecation_line(tmp_path):
    """--device (cpu/cuda here, a hardware device everywhere else), --C and --N became --accelerator, --channels
    and --cells-per-stage; the old spellings are hidden and warn for one version."""
    old = ["--data", "digits", "--epochs", "1", "--C", "4", "--N", "1", "--device", "cpu", "--train-limit", "128",
           "--batch-size", "32"]  # fmt: skip
    result = runner.invoke(app, ["train", ARCH, *old, "--out", str(tmp_path / "old"), "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads((tmp_path / "old" / "result.json").read_text())["settings"]
    assert settings["C"] == 4 and settings["N"] == 1 and settings["device"] == "cpu"
    warnings = [ln for ln in result.stderr.splitlines() if "deprecated" in ln]
    assert len(warnings) == 3 and any("use --accelerator" in ln for ln in warnings)
    both = runner.invoke(app, ["train", ARCH, "--device", "cpu", "--accelerator", "cpu", "--out", str(tmp_path / "b")])
    assert both.exit_code == 2 and "give only --accelerator" in both.stderr
    bad = runner.invoke(app, ["train", ARCH, "--accelerator", "tpu", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "unknown accelerator 'tpu'" in bad.stderr
    help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    assert "--accelerator" in help_text and "--channels" in help_text and "--cells-per-stage" in help_text
    assert "--device" not in help_text and "--C " not in help_text and "--N " not in help_text
