"""A short end-to-end benchmark search: it learns, writes its run directory, and is read back."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from modnas.config import load_config
from modnas.errors import ModnasError
from modnas.rundir import METRIC_FIELDS
from modnas.search import evaluate_run, run_note, search
from modnas.search.benchmark import BenchmarkSearch, measured_architectures
from modnas.spaces.nb201.devices import PROTOCOL_DEVICES, TRAIN_DEVICES
from modnas.tables.nb201 import nb201_tables

TINY = {
    "epochs": 3,
    "steps_per_epoch": 25,
    "query_budget": 40,
    "initial_queries": 20,
    "queries_per_round": 10,
    "preferences_per_device": 8,
    "pretrain_steps": 50,
    "error_predictor.ensemble": 1,
    "error_predictor.steps": 60,
    "seed": 1,
    "hypernet": "mlp",  # the meta hypernetwork (the default) runs end to end in test_trained.py
    # the hypernetwork's own picks: whether it learns is the question here (the default front is tested below)
    "front": "hypernet",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny search shared by the tests below (one torch thread, restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(None, TINY)
        out = tmp_path_factory.mktemp("runs") / "run"
        untrained = BenchmarkSearch(config)
        before, _ = untrained.evaluate()
        summary = search(config, out)
    finally:
        torch.set_num_threads(threads)
    return out, before, summary


def _train_mean(rows):
    return float(np.mean([r["hv"] for r in rows if r["device"] in TRAIN_DEVICES]))


def test_search_improves_over_the_untrained_hypernet(finished_run):
    _, before, summary = finished_run
    assert _train_mean(summary["devices"]) > _train_mean(before) + 0.02


def test_run_directory_files(finished_run):
    out, _, summary = finished_run
    for name in ("config.yaml", "metrics.csv", "fronts.csv", "queries.csv", "summary.json", "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    data = json.loads((out / "summary.json").read_text())
    assert {"devices", "mean_hv", "mean_hv_test", "queries", "seconds"} <= set(data)
    assert [r["device"] for r in data["devices"]] == list(PROTOCOL_DEVICES)
    assert set(data["devices"][0]) == {"device", "split", "hv", "igd_plus", "n_front"}
    assert data == summary
    assert summary["queries"] <= TINY["query_budget"]
    with open(out / "queries.csv") as handle:
        queries = list(csv.DictReader(handle))
    assert len(queries) == summary["queries"] and len({q["arch_str"] for q in queries}) == len(queries)
    with open(out / "metrics.csv") as handle:
        metrics = list(csv.DictReader(handle))
    assert len(metrics) == TINY["epochs"] * len(PROTOCOL_DEVICES)
    with open(out / "fronts.csv") as handle:
        assert sum(1 for _ in csv.DictReader(handle)) == TINY["epochs"] * len(PROTOCOL_DEVICES) * 24
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert state["epoch"] == TINY["epochs"] and len(state["budget"]["queried"]) == summary["queries"]
    assert load_config(out / "config.yaml") == load_config(None, TINY)


def test_evaluate_run_reads_the_summary(finished_run):
    out, _, summary = finished_run
    assert evaluate_run(out) == summary["devices"]
    assert "note" not in summary and run_note(out) is None  # benchmark mode's HV needs no proxy caveat


def test_refuses_a_non_empty_output_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModnasError, match="not empty"):
        search(load_config(None, TINY), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModnasError, match="not a directory"):
        search(load_config(None, TINY), tmp_path / "file")


def test_evaluate_run_on_truncated_runs(finished_run, tmp_path):
    out, _, _ = finished_run
    lines = (out / "metrics.csv").read_text().splitlines()
    n = len(PROTOCOL_DEVICES)
    # an interrupted run: no summary, epochs 1-2 complete, epoch 3 cut off in the middle of a line
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "metrics.csv").write_text("\n".join(lines[: 1 + 2 * n + 5]) + "\n" + lines[1 + 2 * n + 5][:7])
    rows = evaluate_run(partial)
    expected = [r for r in csv.DictReader(lines) if r["epoch"] == "2"]
    assert [r["device"] for r in rows] == list(PROTOCOL_DEVICES)
    assert [r["hv"] for r in rows] == pytest.approx([float(r["hv"]) for r in expected])

    header_only = tmp_path / "header_only"
    header_only.mkdir()
    (header_only / "metrics.csv").write_text(",".join(METRIC_FIELDS) + "\n" + lines[1])
    with pytest.raises(ModnasError, match="truncated"):
        evaluate_run(header_only)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModnasError, match="neither summary.json nor metrics.csv"):
        evaluate_run(empty)
    with pytest.raises(ModnasError, match="does not exist"):
        evaluate_run(tmp_path / "missing")

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "summary.json").write_text('{"devices": [')
    with pytest.raises(ModnasError, match="damaged"):
        evaluate_run(damaged)


def test_reproducible_per_seed():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(None, {**TINY, "epochs": 1, "steps_per_epoch": 3})
        a, b = BenchmarkSearch(config), BenchmarkSearch(config)
        ra, rb = a.run_epoch(), b.run_epoch()
    finally:
        torch.set_num_threads(threads)
    assert [r["hv"] for r in ra.rows] == [r["hv"] for r in rb.rows]
    assert a.budget.queried == b.budget.queried


def _cli():
    import typer

    from modnas.commands.search import evaluate_command, search_command

    app = typer.Typer()
    app.command("search")(search_command)
    app.command("evaluate")(evaluate_command)
    return app


def test_commands(finished_run, tmp_path):
    from typer.testing import CliRunner

    out, _, summary = finished_run
    runner = CliRunner()
    result = runner.invoke(_cli(), ["evaluate", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == summary["devices"]
    result = runner.invoke(_cli(), ["evaluate", str(out)])
    assert result.exit_code == 0 and "mean over 19" in result.stdout and "mean over 6 test" in result.stdout
    (tmp_path / "keep.txt").write_text("x")
    result = runner.invoke(_cli(), ["search", "--out", str(tmp_path), "--epochs", "1"])
    assert result.exit_code == 2 and "not empty" in result.output
    result = runner.invoke(_cli(), ["search", "--out", str(tmp_path / "new"), "--hypernet", "resnet"])
    assert result.exit_code == 2 and "config hypernet" in result.output


def test_evaluate_warns_and_fails_on_a_damaged_checkpoint(finished_run, tmp_path):
    """The scores still print, but a run whose checkpoint is damaged cannot be used further: rc 0 hid that."""
    import shutil

    from typer.testing import CliRunner

    out, _, _ = finished_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    checkpoint = run / "checkpoints" / "last.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    result = CliRunner().invoke(_cli(), ["evaluate", str(run)])
    assert result.exit_code == 1, result.output
    assert "mean over 19" in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning:") and "last.pt" in line and "damaged" in line


@pytest.mark.parametrize("scalarisation", ["linear", "chebyshev"])
def test_predicted_argmins_minimise_the_scalarised_predictions(scalarisation):
    loop = BenchmarkSearch(
        load_config(None, {**TINY, "query_proposals": "hypernet+argmin", "scalarisation": scalarisation})
    )
    best = loop.predicted_argmins()
    assert best.shape == (len(loop.train_devices), len(loop.eval_prefs))
    with torch.no_grad():  # brute force for one device and ray
        err = loop.error_model.error(loop.bound_onehots)
        lat = loop.predictor(loop.bound_onehots, loop.train_emb[2:3])[:, 0]
    r = loop.eval_prefs[5]
    weighted_err = r[0] * (err - loop.err_low) / (loop.err_high - loop.err_low)
    weighted_lat = r[1] * (lat - loop.lat_low[2]) / (loop.lat_high[2] - loop.lat_low[2])
    objective = weighted_err + weighted_lat
    if scalarisation == "chebyshev":
        objective = torch.maximum(weighted_err, weighted_lat) + 0.05 * objective
    position = list(loop.bound_keys).index(best[2, 5])
    assert float(objective[position]) <= float(objective.min()) + 1e-5
    used = loop.budget.used
    assert loop.query_round() == TINY["queries_per_round"] and loop.budget.used == used + TINY["queries_per_round"]


@pytest.mark.parametrize("hypernet", ["meta", "mlp"])
def test_device_gradients_equal_one_batched_pass(hypernet):
    """Device by device equals the batched pass with per-device gradient outputs (zeros elsewhere)."""
    loop = BenchmarkSearch(load_config(None, {**TINY, "hypernet": hypernet}))
    loss, leaf, r, _ = loop.losses()
    (grad_alpha,) = torch.autograd.grad(loss.sum(), leaf)
    alpha = loop.space.mask_logits(loop.hypernet(r, loop.train_emb[:, None, :]))
    t = len(loop.train_devices)
    outputs = torch.eye(t)[:, :, None, None, None] * grad_alpha[None]
    batched = torch.autograd.grad(alpha, loop.params, grad_outputs=outputs, is_grads_batched=True)
    expected = torch.cat([g.reshape(t, -1) for g in batched], dim=1)
    got = loop.device_gradients(r, grad_alpha)
    assert got.shape == expected.shape and bool(expected.abs().sum(1).gt(0).all())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


def test_prefer_measured_by_hand():
    from modnas.search.benchmark import prefer_measured

    prefs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    proposed = np.array([10, 11, 12])
    values = np.array([[10.0, 4.0], [10.0, 4.0], [6.0, 1.0]])  # (error %, latency ms) of the proposals
    measured = np.array([20, 21, 22])
    known = np.array([[9.0, 4.0], [5.0, 3.0], [11.0, 2.0]])
    chosen = prefer_measured(prefs, proposed, values, measured, known)
    # rays 0 and 1: 20 and 21 both dominate; 21 improves the error by 50 % and the latency by 25 %, 20 only the error
    # by 10 %. Ray 2: nothing dominates (6 %, 1 ms), so the proposal stays.
    assert chosen.tolist() == [21, 21, 12]
    # relative gains decide, not absolute ones: with error weight only, 20 (-10 %) loses to 21 (-50 %) as above;
    # with latency weight only, 22 (-50 %) would win over 21 (-25 %) but 22 does not dominate (worse error)
    assert prefer_measured(prefs[2:], proposed[:1], values[:1], measured, known).tolist() == [21]
    # a proposal that is itself measured is not dominated by itself, and an empty archive changes nothing
    assert prefer_measured(prefs[:1], np.array([21]), known[1:2], measured, known).tolist() == [21]
    assert prefer_measured(prefs, proposed, values, np.array([], dtype=int), np.zeros((0, 2))).tolist() == [10, 11, 12]


def test_prefer_measured_three_objectives():
    from modnas.search.benchmark import prefer_measured

    prefs = np.array([[0.2, 0.3, 0.5]])
    chosen = prefer_measured(
        prefs, np.array([1]), np.array([[8.0, 2.0, 3.0]]), np.array([2, 3]),
        np.array([[8.0, 2.0, 2.0], [7.0, 2.5, 1.0]]),  # 2 dominates (less energy); 3 does not (more latency)
    )
    assert chosen.tolist() == [2]


def test_measured_front_in_the_search_and_the_trained_run(tmp_path):
    from modnas.search.benchmark import candidate_values, measured_architectures
    from modnas.search.trained import TrainedSearch
    from modnas.spaces.nb201.devices import registry

    config = load_config(None, {**TINY, "epochs": 1, "front": "hypernet+measured"})
    loop = BenchmarkSearch(config)
    proposed, reported = loop.proposals(), loop.front_keys()
    measured, errors = measured_architectures(loop.budget, config.error_predictor.degenerate_error)
    assert len(measured) > 0 and (errors < config.error_predictor.degenerate_error).all()
    swapped = 0
    for name in PROTOCOL_DEVICES:
        device = registry.get(name)
        args = (loop.error_model, loop.predictor, config.objectives, loop.problem, loop.budget, config.front_latency)
        own, new = candidate_values(proposed[name], device, *args), candidate_values(reported[name], device, *args)
        changed = reported[name] != proposed[name]
        swapped += int(changed.sum())
        assert np.isin(reported[name][changed], measured).all()  # only measured architectures are swapped in
        assert (new[changed] <= own[changed]).all() and (new[changed] < own[changed]).any(axis=1).all()
    assert swapped > 0  # an untrained hypernetwork's proposals are easy to dominate
    search(config, tmp_path / "run")
    trained = TrainedSearch.load(tmp_path / "run")
    with open(tmp_path / "run" / "fronts.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["device"] == "pixel2"]
    expected = [r["arch_str"] for r in rows]
    assert list(trained.architectures(registry.get("pixel2"), loop.eval_prefs)) == expected


def test_candidate_latency_is_measured_only_where_the_device_has_a_measurement():
    from modnas.search.benchmark import candidate_values
    from modnas.spaces.nb201 import index_to_string
    from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES, registry

    loop = BenchmarkSearch(load_config(None, {**TINY, "epochs": 1}))
    indices = np.array([3, 777, 12345, REFERENCE_ARCH_INDICES[0], REFERENCE_ARCH_INDICES[5]])
    keys = [index_to_string(int(i)) for i in indices]
    args = (loop.error_model, loop.predictor, ("error", "latency"), loop.problem, loop.budget)
    for name in ("pixel3", "pixel2"):  # a training device and a zero-shot test device
        device = registry.get(name)
        predicted = candidate_values(keys, device, *args, "predicted")
        measured = candidate_values(keys, device, *args, "measured")
        table = nb201_tables.latency(name, indices)
        assert np.allclose(measured[:, 0], predicted[:, 0])  # errors do not depend on the latency source
        assert not np.allclose(predicted[:, 1], table)  # the predictor is not the table
        if name == "pixel3":  # the predictor's training data: the whole table is a measurement
            assert np.allclose(measured[:, 1], table)
        else:  # zero-shot: only the 10 reference architectures are measured; the table is never read
            assert np.allclose(measured[3:, 1], table[3:])
            assert np.allclose(measured[:3, 1], predicted[:3, 1])


def test_front_latency_predicted_reproduces_the_predictor_only_front():
    from modnas.search.benchmark import candidate_values, measured_architectures, prefer_measured
    from modnas.spaces.nb201.devices import registry

    config = load_config(None, {**TINY, "epochs": 1, "front": "hypernet+measured", "front_latency": "predicted"})
    loop = BenchmarkSearch(config)
    proposed, reported = loop.proposals(), loop.front_keys()
    measured, _ = measured_architectures(loop.budget, config.error_predictor.degenerate_error)
    device = registry.get("pixel3")
    args = (loop.error_model, loop.predictor, config.objectives, loop.problem, loop.budget)  # default: predicted
    expected = prefer_measured(
        loop.eval_prefs, proposed["pixel3"], candidate_values(proposed["pixel3"], device, *args), measured,
        candidate_values(measured, device, *args),
    )
    assert (reported["pixel3"] == expected).all()


def test_the_loss_follows_the_scalarisation(monkeypatch):
    """The hypernetwork's per-device loss is the configured scalarisation of the normalised objectives."""
    from modnas.search import base

    seen, original = [], base.scalarise

    def recording(r, objectives, method):
        seen.append((r, objectives, method))
        return original(r, objectives, method)

    monkeypatch.setattr(base, "scalarise", recording)
    loop = BenchmarkSearch(load_config(None, {**TINY, "scalarisation": "chebyshev"}))
    loss, _, r, _ = loop.losses()
    (r_seen, objectives, method), = seen
    assert method == "chebyshev" and r_seen is r and objectives.shape == (*r.shape[:2], 2)
    weighted = r * objectives
    expected = (weighted.amax(-1) + 0.05 * weighted.sum(-1)).mean(dim=1)
    torch.testing.assert_close(loss, expected)
    with pytest.raises(Exception, match="scalarisation"):
        load_config(None, {**TINY, "scalarisation": "tchebycheff"})


def test_refined_picks_are_local_minima_of_the_search_objectives():
    """Each refined pick scores no worse than the hypernetwork's pick under the search's own normalised,
    scalarised objectives, and no one-move neighbour scores better (steepest descent ran to its end)."""
    from modnas.evaluation import scalarise
    from modnas.search.benchmark import _predicted_values, refine_front

    loop = BenchmarkSearch(load_config(None, {**TINY, "scalarisation": "chebyshev"}))
    name = loop.train_devices[0]
    device = loop.problem.devices.get(name)
    proposed = loop.proposals((name,))[name]
    degenerate = loop.config.error_predictor.degenerate_error
    refined = refine_front(loop.eval_prefs, proposed, device, loop.error_model, loop.predictor, loop.config.objectives,
                           loop.problem, loop.budget, degenerate, "chebyshev", rounds=100)
    assert refined.shape == proposed.shape and (refined != proposed).any()
    space = loop.problem.space
    queried, errors = measured_architectures(loop.budget, degenerate)
    known = {row.tobytes(): float(e) for row, e in zip(space.parse_many(list(queried)), errors)}
    hardware = _predicted_values(space.enumerate(), device, loop.error_model, loop.predictor, loop.config.objectives,
                                 loop.problem, known)
    low, high = hardware.min(axis=0), hardware.max(axis=0)
    low[0], high[0] = errors.min(), errors.max()

    def score(pref, keys):
        raw = _predicted_values(space.parse_many(list(keys)), device, loop.error_model, loop.predictor,
                                loop.config.objectives, loop.problem, known)
        return scalarise(pref[None], (raw - low) / (high - low), "chebyshev"), raw[:, 0]

    for pref, before, after in zip(loop.eval_prefs, proposed, refined):
        (s_before, s_after), _ = score(pref, [before, after])
        assert s_after <= s_before + 1e-9
        neighbours = space.keys(space.neighbours(space.parse(after)))
        s_neighbours, err = score(pref, neighbours)
        assert (s_neighbours[err < degenerate] >= s_after - 1e-9).all()


def test_refine_rounds_moves_the_reported_front_only():
    """With refine_rounds the reported fronts move from the final epoch on; the queries (proposals) and training
    do not change, so earlier epochs report the hypernetwork's picks."""
    plain = BenchmarkSearch(load_config(None, {**TINY, "epochs": 2, "steps_per_epoch": 3}))
    refined = BenchmarkSearch(load_config(None, {**TINY, "epochs": 2, "steps_per_epoch": 3, "refine_rounds": 5}))
    names = plain.train_devices[:2]

    def fronts(loop: BenchmarkSearch, **kwargs) -> dict:
        return {n: list(k) for n, k in loop.front_keys(names, **kwargs).items()}

    for epoch in (1, 2):
        for loop in (plain, refined):
            loop.train_epoch()
        assert {n: list(k) for n, k in plain.proposals(names).items()} == {
            n: list(k) for n, k in refined.proposals(names).items()
        }
        moved = fronts(refined, refine=True) != fronts(plain)
        assert moved
        if epoch == 1:  # not the final epoch: the picks are reported as the hypernetwork made them
            assert fronts(refined) == fronts(plain)
        else:
            assert fronts(refined) == fronts(refined, refine=True)
