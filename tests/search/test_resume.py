"""Resuming a run: an interrupted and resumed search ends exactly where an uninterrupted one does, and damaged or
foreign run directories are refused without touching a file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modnas.cli import app
from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.search import resume_search, search

TINY = {
    "epochs": 3,
    "steps_per_epoch": 4,
    "query_budget": 30,
    "initial_queries": 20,
    "queries_per_round": 5,
    "preferences_per_device": 4,
    "pretrain_steps": 20,
    "error_predictor.ensemble": 1,
    "error_predictor.steps": 20,
    "seed": 3,
}


class _Stop(Exception):
    pass


def _interrupt_after(steps: int):
    """A progress callback that stops the run at its ``steps``-th step (as a Ctrl-C or a kill would)."""

    def progress(done: int, total: int, hv: float | None) -> None:
        if done >= steps:
            raise _Stop

    return progress


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny search twice: straight through, and interrupted in epoch 2 then resumed."""
    root = tmp_path_factory.mktemp("resume")
    config = load_config(None, TINY)
    straight = root / "straight"
    search(config, straight)
    resumed = root / "resumed"
    with pytest.raises(_Stop):
        search(config, resumed, progress=_interrupt_after(TINY["steps_per_epoch"] + 2))
    interrupted = root / "interrupted"
    shutil.copytree(resumed, interrupted)
    summary = resume_search(resumed)
    return straight, resumed, interrupted, summary


def test_metadata_says_how_the_run_ended(runs):
    import json

    straight, resumed, interrupted, _ = runs
    assert json.loads((interrupted / "metadata.json").read_text())["status"] == "failed"  # an exception stopped it
    for run in (straight, resumed):
        assert json.loads((run / "metadata.json").read_text())["status"] == "complete"


def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    """A batch scheduler's SIGTERM: one line saying what was kept, exit status 130, metadata `interrupted`."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    config_file = tmp_path / "long.yaml"
    config_file.write_text(load_config(None, {**TINY, "epochs": 500}).to_yaml())
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "modnas", "search", str(config_file), "--out", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.pt").exists():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    # the epoch line may or may not have been logged before the signal came; blank lines end the progress display
    (line,) = [text for text in err.splitlines() if text.strip() and not text.startswith("epoch ")]
    assert f"modnas search --resume {run}" in line and "Traceback" not in err
    assert json.loads((run / "metadata.json").read_text())["status"] == "interrupted"


def test_interrupted_run_holds_its_last_finished_epoch(runs):
    _, _, interrupted, _ = runs
    state = torch.load(interrupted / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert not (interrupted / "summary.json").exists()


def test_resumed_run_equals_the_uninterrupted_one(runs):
    straight, resumed, _, summary = runs
    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == TINY["epochs"]
    for name, tensor in a["hypernet"].items():
        assert torch.equal(tensor, b["hypernet"][name]), name
    assert a["budget"] == b["budget"]
    for name in ("metrics.csv", "fronts.csv", "queries.csv"):
        assert (straight / name).read_text() == (resumed / name).read_text(), name
    assert summary["epoch"] == TINY["epochs"] and summary["queries"] == a["budget"]["limit"]


def test_resume_after_a_kill_between_checkpoint_and_csvs(runs, tmp_path):
    straight, _, interrupted, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text(lines[0] + "".join(lines[1:5]))  # the checkpoint's epoch lost, one row cut
    resume_search(run)
    assert (run / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    assert (run / "fronts.csv").read_text() == (straight / "fronts.csv").read_text()


def test_complete_run_is_refused(runs):
    _, resumed, _, _ = runs
    before = _snapshot(resumed)
    with pytest.raises(ModnasError, match="already complete"):
        resume_search(resumed)
    assert _snapshot(resumed) == before


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda run: (run / "checkpoints" / "last.pt").write_bytes(
            (run / "checkpoints" / "last.pt").read_bytes()[:1000]), "damaged"),
        (lambda run: (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint"), "damaged"),
        (lambda run: (run / "checkpoints" / "last.pt").unlink(), "no finished epoch"),
        (lambda run: (run / "config.yaml").write_text(
            (run / "config.yaml").read_text().replace("seed: 3", "seed: 4")), "different config"),
        (lambda run: (run / "config.yaml").unlink(), "config.yaml is missing"),
        (lambda run: torch.save({"epoch": 1, "config": {}}, run / "checkpoints" / "last.pt"), "format version"),
    ],
)
def test_damaged_or_foreign_runs_are_refused_untouched(runs, tmp_path, damage, needle):
    _, _, interrupted, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    damage(run)
    before = _snapshot(run)
    with pytest.raises(ModnasError, match=needle):
        resume_search(run)
    assert _snapshot(run) == before


def test_missing_run_directory(tmp_path):
    with pytest.raises(ModnasError, match="does not exist"):
        resume_search(tmp_path / "nope")


def test_cli_resume(runs, tmp_path):
    straight, _, interrupted, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    result = CliRunner().invoke(app, ["search", "--resume", str(run), "--json"])
    assert result.exit_code == 0, result.output
    assert (run / "metrics.csv").read_text() == (straight / "metrics.csv").read_text()
    refused = CliRunner().invoke(app, ["search", "--resume", str(run), "--seed", "1"])
    assert refused.exit_code == 2 and "drop seed" in refused.output


def test_full_disk_during_a_search_is_one_line_naming_what_was_kept(tmp_path, monkeypatch):
    """torch.save on a full disk raises RuntimeError ('unexpected pos'); the previous checkpoint stays intact."""
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(load_config(None, TINY).to_yaml())
    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file "
                               "data/3: file write failed\nunexpected pos 1234 vs 5678")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", str(config_file), "--out", str(run)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    # without a terminal each finished epoch also logs one plain line; the error is one line after them
    (line,) = [text for text in result.stderr.strip().splitlines() if text.startswith("error:")]
    assert "file write failed" in line and "checkpoints/last.pt holds epoch 1" in line
    assert f"modnas search --resume {run}" in line
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert not list((run / "checkpoints").glob(".*.tmp"))  # no temporary file left behind


def test_unwritable_out_is_refused_before_the_search(tmp_path):
    (tmp_path / "plain_file").write_text("")
    result = CliRunner().invoke(app, ["search", "--out", str(tmp_path / "plain_file" / "run"), "--epochs", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "cannot write" in result.stderr


def _ctrl_c_at_epoch_end(monkeypatch, after_writing: bool) -> None:
    """Ctrl-C at the end of the first epoch, after its files are written or before."""
    from modnas.search import run as run_module

    real = run_module._RunWriter.epoch_done

    def epoch_done(self, *args, **kwargs):
        if after_writing:
            real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module._RunWriter, "epoch_done", epoch_done)


def test_ctrl_c_says_what_was_saved_and_how_to_resume(runs, tmp_path, monkeypatch):
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(load_config(None, TINY).to_yaml())
    _ctrl_c_at_epoch_end(monkeypatch, after_writing=True)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["search", str(config_file), "--out", str(run)])
    assert result.exit_code == 130, result.output
    # without a terminal each finished epoch also logs one plain line; the error is one line after them
    (line,) = [text for text in result.stderr.strip().splitlines() if not text.startswith("epoch ")]
    assert "holds epoch 1 of 3" in line and f"modnas search --resume {run}" in line
    assert "Traceback" not in result.output


def test_a_run_stopped_before_its_first_checkpoint_can_be_resumed_or_reused(tmp_path, monkeypatch):
    one_epoch = {**TINY, "epochs": 1}
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(load_config(None, one_epoch).to_yaml())
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _ctrl_c_at_epoch_end(patch, after_writing=False)
        result = CliRunner().invoke(app, ["search", str(config_file), "--out", str(run)])
        assert result.exit_code == 130, result.output
        # without a terminal each finished epoch also logs one plain line; the error is one line after them
        (line,) = [text for text in result.stderr.strip().splitlines() if not text.startswith("epoch ")]
        assert "nothing to keep" in line and "--resume" in line and "--out" in line
    assert not (run / "checkpoints" / "last.pt").exists()
    summary = resume_search(run)  # starts again from the beginning
    assert summary["epoch"] == 1 and torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    # reused as --out
    again = tmp_path / "again"
    with monkeypatch.context() as patch:
        _ctrl_c_at_epoch_end(patch, after_writing=False)
        assert CliRunner().invoke(app, ["search", str(config_file), "--out", str(again)]).exit_code == 130
    result = CliRunner().invoke(app, ["search", str(config_file), "--out", str(again), "--json"])
    assert result.exit_code == 0, result.output
    assert (again / "metrics.csv").read_text() == (run / "metrics.csv").read_text()
    # a run with results is still refused as --out
    refused = CliRunner().invoke(app, ["search", str(config_file), "--out", str(again)])
    assert refused.exit_code == 2 and "not empty" in refused.stderr


def test_a_run_in_use_is_not_resumed_twice(runs, tmp_path):
    from modnas.rundir import run_lock

    _, _, interrupted, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    before = _snapshot(run)
    with run_lock(run):  # as a first `modnas search --resume` holds it
        with pytest.raises(ModnasError, match="in use by another modnas process"):
            resume_search(run)
        result = CliRunner().invoke(app, ["search", "--resume", str(run)])
        assert result.exit_code == 2 and "in use" in result.stderr
    after = _snapshot(run)
    for files in (before, after):
        files.pop(".modnas.lock", None)
    assert after == before


def test_a_run_written_before_the_experimental_section_resumes(runs, tmp_path, caplog):
    """Its config.yaml and checkpoint hold the experimental settings at their old places (and no ``space``)."""
    import logging

    import yaml

    from modnas.config import load_config as load

    straight, _, interrupted, _ = runs
    run = tmp_path / "run"
    shutil.copytree(interrupted, run)
    flat = load(run / "config.yaml").model_dump(mode="json")
    experimental = flat.pop("experimental")
    del flat["space"]
    flat["error_predictor"]["pessimism"] = experimental.pop("pessimism")
    flat.update(experimental)
    (run / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["config"] = flat
    torch.save(state, run / "checkpoints" / "last.pt")
    with caplog.at_level(logging.WARNING, logger="modnas"):
        resume_search(run)
    assert not [r for r in caplog.records if "deprecated" in r.getMessage()]  # a run's own file: no warning
    for name in ("metrics.csv", "fronts.csv", "queries.csv"):
        assert (run / name).read_text() == (straight / name).read_text(), name
