"""``modnas train``: trains an exported architecture, prints the accuracy, refuses bad input in one line."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from modnas.cli import app

runner = CliRunner()
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
FAST = ["--data", "digits", "--epochs", "1", "--C", "4", "--N", "1", "--train-limit", "128", "--batch-size", "32"]


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
    assert re.search(r"^epoch 1/1: train loss \d+\.\d{4}, train [\d.]+ %, test [\d.]+ %; [\d.]+ s$", result.stderr, re.M)
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
