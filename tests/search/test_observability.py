"""Following a search: plain per-epoch lines without a terminal, epoch callbacks, TensorBoard and metadata.json."""

from __future__ import annotations

import json
import logging
import re
import sys
from unittest import mock

import pytest
import torch
from typer.testing import CliRunner

from modnas import __version__
from modnas.cli import app
from modnas.commands.common import configure_logging, log_level, plain_output
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search import resume_search, search
from modnas.search.trackers import EpochInfo, TensorBoardTracker

runner = CliRunner()
TINY = {
    "epochs": 2, "steps_per_epoch": 2, "query_budget": 30, "initial_queries": 20, "queries_per_round": 5,
    "preferences_per_device": 4, "pretrain_steps": 10, "error_predictor.ensemble": 1, "error_predictor.steps": 10,
    "seed": 5,
}
LINE = re.compile(
    r"^epoch (\d+)/2: mean HV (0\.\d{4}) \(train 0\.\d{4}, test 0\.\d{4}\); (\d+) queries; \d+\.\d s$", re.MULTILINE
)


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A tiny search through the CLI, without a terminal (CliRunner's streams are not TTYs), with TensorBoard."""
    root = tmp_path_factory.mktemp("observe")
    config = root / "tiny.yaml"
    config.write_text("\n".join(f"{k}: {v}" for k, v in TINY.items() if "." not in k)
                      + "\nerror_predictor:\n  ensemble: 1\n  steps: 10\n")
    out = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["search", str(config), "--out", str(out), "--json"]
        tracking = _has_tensorboard()
        args += ["--tensorboard"] if tracking else []
        with mock.patch.object(sys, "argv", ["modnas", *args]):  # what the modnas script would see
            result = runner.invoke(app, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out, result, tracking


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def test_one_plain_line_per_epoch_without_a_terminal(cli_run):
    out, result, _ = cli_run
    lines = LINE.findall(result.stderr)
    assert [int(epoch) for epoch, _, _ in lines] == [1, 2]
    summary = json.loads(result.stdout)  # stdout stays pure JSON
    assert float(lines[-1][1]) == pytest.approx(summary["mean_hv"], abs=5e-5)
    assert int(lines[-1][2]) == summary["queries"]


def test_metadata_json_of_a_cli_run(cli_run):
    out, _, _ = cli_run
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["modnas_version"] == __version__
    assert meta["status"] == "complete" and meta["end_time"] >= meta["start_time"]
    assert meta["seed"] == 5 and meta["world_size"] == 1 and meta["kind"] == "search/benchmark"
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["host"]["cpu_cores"] >= 1 and "gpu" in meta["host"]
    assert meta["command_line"].startswith("modnas search ") and f"--out {out}" in meta["command_line"]
    # a git checkout gives its 40-hex commit; an installed package gives None
    assert meta["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", meta["git_commit"])
    assert not list(out.glob(".metadata.json.*"))  # written atomically: no temporary file left


def test_tensorboard_scalars(cli_run):
    out, _, tracking = cli_run
    if not tracking:
        pytest.skip("tensorboard is not installed (extra [tracking])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"hv/mean", "hv/mean_train", "hv/mean_test", "search/queries", "hv_device/fpga"} <= set(tags)
    means = events.Scalars("hv/mean")
    assert [e.step for e in means] == [1, 2]
    metrics = json.loads((out / "summary.json").read_text())
    assert means[-1].value == pytest.approx(metrics["mean_hv"], rel=1e-5)


def test_missing_tensorboard_is_one_line_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ModnasError, match=r"pip install 'modnas\[tracking\]'"):
        TensorBoardTracker()
    result = runner.invoke(app, ["search", "--epochs", "1", "--out", str(tmp_path / "run"), "--tensorboard"])
    assert result.exit_code == 2 and "modnas[tracking]" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_epoch_callbacks_and_metadata_of_a_resumed_run(tmp_path):
    config = load_config(None, TINY)
    seen: list[EpochInfo] = []

    def stop_after_first(info: EpochInfo) -> None:
        # the epoch's files are written before callbacks run
        assert (info.run_dir / "checkpoints" / "last.pt").is_file()
        assert f"\n{info.epoch}," in (info.run_dir / "metrics.csv").read_text()
        seen.append(info)
        raise _Stop

    run = tmp_path / "run"
    with pytest.raises(_Stop):
        search(config, run, callbacks=[stop_after_first])
    first = json.loads((run / "metadata.json").read_text())
    # an exception stopped the run after epoch 1: metadata.json says so (Ctrl-C and SIGTERM: interrupted)
    assert first["status"] == "failed" and first["end_time"] is not None and first["epoch"] == 1
    summary = resume_search(run, callbacks=[seen.append])
    assert [i.epoch for i in seen] == [1, 2] and all(i.epochs == 2 for i in seen)
    assert seen[-1].mean_hv == pytest.approx(summary["mean_hv"])
    assert seen[-1].mean_hv_by_split["test"] == pytest.approx(summary["mean_hv_test"])
    assert seen[-1].queries == summary["queries"] and len(seen[-1].rows) == len(summary["devices"])
    assert seen[-1].line().startswith("epoch 2/2: mean HV ")
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["start_time"] == first["start_time"]  # the first start is kept
    assert meta["status"] == "complete" and meta["end_time"] is not None and meta["epoch"] == 2
    assert len(meta["resumed"]) == 1 and meta["resumed"][0]["end_time"] is not None


def test_library_epoch_lines_go_through_logging(tmp_path, caplog):
    lines = []
    config = load_config(None, {**TINY, "epochs": 1})
    with caplog.at_level(logging.INFO, logger="modnas.search"):
        search(config, tmp_path / "run", callbacks=[lambda info: lines.append(info.line())])
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("modnas.search")]
    assert logged == lines and lines[0].startswith("epoch 1/1: mean HV")


def test_cli_logging_is_quiet_below_warning_unless_asked(capsys):
    configure_logging()
    log = logging.getLogger("modnas.search.run")
    log.info("hidden")
    log.warning("shown")
    with log_level("modnas.search", logging.INFO):
        log.info("epoch line")
    log.info("hidden again")
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: shown", "epoch line"]


def test_plain_output_follows_the_terminals(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert not plain_output()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert plain_output()
