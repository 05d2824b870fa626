"""The shared protocol scorer (spec section 9), checked against a brute-force re-implementation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from modnas.errors import ModnasError, UnknownDeviceError
from modnas.evaluation.scorer import Score, protocol, score, true_front
from modnas.spaces.nb201 import index_to_string, parse, sample, to_string
from modnas.spaces.nb201.devices import registry
from modnas.spaces.nb201.problem import ERROR_CUTOFF, make_problem, score_indices
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def random_archs(n: int, seed: int) -> list[str]:
    return [to_string(ops) for ops in sample(n, np.random.default_rng(seed))]


# -- independent brute-force protocol ------------------------------------------------------------------------


def brute_objectives(device: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw (error, latency) of all archs and the protocol's validity mask, straight from the tables."""
    error = 100.0 - np.array(nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep"))
    latency = np.array(nb201_tables.full_column("latency", device))
    raw = np.stack([error, latency], axis=1)
    valid = (error < 90.0) & np.isfinite(raw).all(axis=1)
    return raw, valid


def brute_nondominated(points: np.ndarray) -> np.ndarray:
    """O(n^2): a point is kept unless another point is <= everywhere and < somewhere (ties are kept)."""
    le = (points[:, None, :] <= points[None, :, :]).all(-1)  # le[j, i]: j weakly better than i everywhere
    lt = (points[:, None, :] < points[None, :, :]).any(-1)
    return ~(le & lt).any(axis=0)


def sweep_nondominated(points: np.ndarray) -> np.ndarray:
    """O(n log n) 2-D sweep with ties kept.

    A point is dominated iff a lexicographically smaller distinct point has a latency no larger than its own.
    """
    uniq, inverse = np.unique(points, axis=0, return_inverse=True)  # lexicographically sorted
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(uniq[:, 1])[:-1]])
    return (uniq[:, 1] < best_before)[np.ravel(inverse)]


def sweep_hv(points: np.ndarray) -> float:
    """2-D hypervolume to the reference (1, 1) by a sweep over the sorted distinct front points."""
    pts = np.unique(points[brute_nondominated(points)], axis=0) if len(points) else points
    pts = pts[(pts < 1.0).all(axis=1)]
    hv = 0.0
    for i, (x, y) in enumerate(pts):
        right = pts[i + 1, 0] if i + 1 < len(pts) else 1.0
        hv += (right - x) * (1.0 - y)
    return hv


def brute_score(archs: list[str], device: str) -> dict:
    raw, valid = brute_objectives(device)
    lo, hi = raw[valid].min(axis=0), raw[valid].max(axis=0)
    pool = (raw[valid] - lo) / (hi - lo)
    true_mask = sweep_nondominated(pool)
    true_idx = np.flatnonzero(valid)[true_mask]
    true_pts = pool[true_mask]

    strings = nb201_tables.arch_strings
    lookup = {s: i for i, s in enumerate(strings)}
    idx = np.array(sorted({lookup[a] for a in archs}), dtype=np.int64)
    kept = idx[valid[idx]]
    pts = (raw[kept] - lo) / (hi - lo)
    mask = brute_nondominated(pts)
    front_pts = pts[mask]
    reference = np.unique(true_pts, axis=0)  # IGD counts each distinct true-front point once
    dist = np.linalg.norm(front_pts[None, :, :] - reference[:, None, :], axis=-1)
    dplus = np.linalg.norm(np.maximum(front_pts[None, :, :] - reference[:, None, :], 0.0), axis=-1)
    return {
        "hv": sweep_hv(pts),
        "true_hv": sweep_hv(true_pts),
        "igd": float(dist.min(axis=1).mean()),
        "igd_plus": float(dplus.min(axis=1).mean()),
        "n_candidates": len(idx),
        "n_valid": len(kept),
        "n_front": int(mask.sum()),
        "n_on_true_front": int(np.isin(kept, true_idx).sum()),
        "front": {strings[i] for i in kept[mask]},
    }


def test_brute_force_pareto_filters_agree():
    """Sanity check of the oracle itself: the O(n^2) filter and the sweep agree, ties included."""
    rng = np.random.default_rng(3)
    pts = rng.integers(0, 6, size=(300, 2)).astype(float)
    np.testing.assert_array_equal(brute_nondominated(pts), sweep_nondominated(pts))


@pytest.mark.parametrize(
    ("device", "n", "seed"),
    [("fpga", 24, 0), ("fpga", 60, 1), ("fpga", 200, 2), ("samsung_a50", 100, 4), ("1080ti_1", 300, 5)],
)
def test_score_matches_brute_force(device, n, seed):
    archs = random_archs(n, seed)
    got, want = score(archs, device), brute_score(archs, device)
    assert got.hv == pytest.approx(want["hv"], abs=1e-12)
    assert got.true_hv == pytest.approx(want["true_hv"], abs=1e-12)
    assert got.igd == pytest.approx(want["igd"], abs=1e-12)
    assert got.igd_plus == pytest.approx(want["igd_plus"], abs=1e-12)
    for key in ("n_candidates", "n_valid", "n_front", "n_on_true_front"):
        assert getattr(got, key) == want[key], key
    assert set(got.front) == want["front"]


@pytest.mark.parametrize("device", ["fpga", "1080ti_1", "eyeriss"])
def test_true_front_matches_brute_force(device):
    raw, valid = brute_objectives(device)
    pool = (raw[valid] - raw[valid].min(axis=0)) / (raw[valid].max(axis=0) - raw[valid].min(axis=0))
    mask = sweep_nondominated(pool)
    tf = true_front(device)
    assert set(tf.indices) == set(np.flatnonzero(valid)[mask].tolist())
    assert tf.hv == pytest.approx(sweep_hv(pool[mask]), abs=1e-12)


# -- the true front ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "hv"), [("fpga", 0.9742), ("1080ti_1", 0.9458)])
def test_true_front_hv(device, hv):
    assert round(true_front(device).hv, 4) == hv


def test_true_front_fields():
    tf = true_front("fpga")
    assert tf.split == "test" and tf.objectives == ("error", "latency")
    assert len(tf.indices) == len(tf.arch_strs) == len(tf.raw) == len(tf.normalised)
    assert tf.arch_strs == tuple(index_to_string(i) for i in tf.indices)
    assert (np.diff(tf.normalised[:, 0]) >= 0).all(), "sorted by error"
    assert (tf.raw[:, 0] < ERROR_CUTOFF).all()
    assert ((tf.normalised >= 0) & (tf.normalised <= 1)).all()
    assert tf.normalised[0, 0] == 0.0 and tf.normalised[:, 1].min() == 0.0
    json.dumps(tf.to_dict())
    assert tf.to_dict()["n_front"] == len(tf.indices)


@pytest.mark.parametrize("device", ["fpga", "1080ti_1", "samsung_a50", "eyeriss"])
def test_scoring_the_true_front_is_perfect(device):
    tf = true_front(device)
    s = score(list(tf.arch_strs), device)
    assert s.hv == pytest.approx(tf.hv, abs=1e-12)
    assert s.hv_ratio == pytest.approx(1.0)
    assert s.igd == pytest.approx(0.0, abs=1e-12)
    assert s.igd_plus == pytest.approx(0.0, abs=1e-12)
    assert s.n_on_true_front == s.n_front == s.n_valid == s.n_candidates == len(tf.indices)
    assert s.front == tf.arch_strs


def _raw_valid(device, objectives=("error", "latency")):
    truth = make_problem().truth
    raw = np.stack([truth.column(o, device) for o in objectives], axis=1)
    return raw, truth.valid(raw)


def test_protocol_normalisation_bounds():
    norm = protocol("fpga")
    raw, valid = _raw_valid("fpga")
    pool = norm.normalise(raw[valid])
    np.testing.assert_allclose(pool.min(axis=0), 0.0)
    np.testing.assert_allclose(pool.max(axis=0), 1.0)
    assert valid.sum() < NUM_ARCHS
    assert not valid[np.flatnonzero(raw[:, 0] >= ERROR_CUTOFF)].any()


# -- scoring candidate sets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("device", "seed"), [("fpga", 0), ("fpga", 1), ("1080ti_1", 2), ("raspi4", 3)])
def test_random_sample_scores_below_the_true_front(device, seed):
    s = score(random_archs(24, seed), device)
    assert 0.0 <= s.hv < s.true_hv
    assert s.igd_plus > 0 and s.igd > 0
    assert s.n_candidates <= 24 and s.n_front <= s.n_valid <= s.n_candidates
    assert s.true_hv == pytest.approx(true_front(device).hv)


def test_duplicates_do_not_change_the_score():
    archs = random_archs(24, 10)
    once, twice = score(archs, "fpga"), score(archs + archs[::-1] + archs[:5], "fpga")
    assert twice == once
    assert once.n_candidates == len(set(archs))


def test_n_candidates_counts_distinct_archs():
    archs = [ALL_NONE, *true_front("fpga").arch_strs[:3]]
    assert score(archs * 3, "fpga").n_candidates == 4


def test_degenerate_archs_are_dropped():
    tf = true_front("fpga")
    lookup = {a: i for i, a in enumerate(nb201_tables.arch_strings)}
    assert 100.0 - nb201_tables.accuracy(lookup[ALL_NONE]) >= ERROR_CUTOFF
    with_none = score([*tf.arch_strs, ALL_NONE], "fpga")
    assert with_none.n_candidates == len(tf.indices) + 1
    assert with_none.n_valid == len(tf.indices)
    assert with_none.hv == pytest.approx(tf.hv)
    assert ALL_NONE not in with_none.front


def test_only_degenerate_archs_score_empty():
    s = score([ALL_NONE], "fpga")
    assert (s.n_candidates, s.n_valid, s.n_front, s.hv) == (1, 0, 0, 0.0)
    assert s.igd is None and s.igd_plus is None and s.front == ()


def test_error_cutoff_applies_at_90():
    """Every arch with error >= 90 is dropped and every other one kept."""
    error = 100.0 - np.array(nb201_tables.full_column("accuracy", "cifar10_test_acc_200ep"))
    bad = np.flatnonzero(error >= 90.0)
    good = np.flatnonzero(error < 90.0)[:50]
    assert len(bad) > 0
    s = score_indices(np.concatenate([bad, good]), "fpga")
    assert (s.n_candidates, s.n_valid) == (len(bad) + len(good), len(good))


def test_op_indices_strings_and_canonical_indices_agree():
    ops = sample(40, np.random.default_rng(11))
    strings = [to_string(o) for o in ops]
    by_ops = score(ops, "fpga")
    by_list = score(ops.tolist(), "fpga")
    by_str = score(strings, "fpga")
    by_str_array = score(np.array(strings), "fpga")
    lookup = {s: i for i, s in enumerate(nb201_tables.arch_strings)}
    by_idx = score_indices(np.array([lookup[s] for s in strings]), "fpga")
    assert by_ops == by_list == by_str == by_str_array == by_idx
    assert by_ops.n_valid > 0


def test_single_string_and_single_op_row():
    s = true_front("fpga").arch_strs[0]
    assert score([s], "fpga") == score(parse(s)[None, :], "fpga")
    assert score([s], "fpga").n_front == 1


def test_empty_candidate_set():
    for empty in ([], np.zeros((0, 6), dtype=np.int64)):
        s = score(empty, "fpga")
        assert (s.n_candidates, s.n_valid, s.n_front, s.hv) == (0, 0, 0, 0.0)
        assert s.igd is None and s.igd_plus is None


def test_index_out_of_range():
    with pytest.raises(ModnasError, match="out of range"):
        score_indices(np.array([0, NUM_ARCHS]), "fpga")


def test_malformed_arch_string():
    with pytest.raises(ModnasError):
        score(["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"], "fpga")


# -- three objectives ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["fpga", "eyeriss"])
def test_three_objectives(device):
    objectives = ("error", "latency", "energy")
    tf = true_front(device, objectives)
    assert tf.objectives == objectives and tf.normalised.shape[1] == 3
    assert 0.0 < tf.hv <= 1.0
    s = score(random_archs(24, 6), device, objectives)
    assert math.isfinite(s.hv) and 0.0 < s.hv <= 1.0
    assert s.hv < tf.hv and s.objectives == objectives
    perfect = score(list(tf.arch_strs), device, objectives)
    assert perfect.hv == pytest.approx(tf.hv)


def test_three_objectives_front_is_not_smaller_than_two():
    """Adding an objective keeps every 2-D front member that has an energy value on the 3-D front."""
    objectives = ("error", "latency", "energy")
    archs = random_archs(50, 12)
    two, three = score(archs, "fpga"), score(archs, "fpga", objectives)
    valid3 = _raw_valid("fpga", objectives)[1]
    lookup = {a: i for i, a in enumerate(nb201_tables.arch_strings)}
    kept = {a for a in two.front if valid3[lookup[a]]}
    assert kept and kept <= set(three.front)


# -- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["1080ti_1", "raspi4", "pixel2"])
def test_energy_without_data(device):
    with pytest.raises(ModnasError, match="energy"):
        score(random_archs(5, 0), device, ("error", "latency", "energy"))


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        (("error", "power"), "unknown objective 'power'"),
        (("latency", "error"), "objectives must be"),
        (("error",), "objectives must be"),
        (("error", "latency", "latency"), "objectives must be"),
    ],
)
def test_bad_objectives(objectives, message):
    with pytest.raises(ModnasError, match=message):
        score(random_archs(5, 0), "fpga", objectives)


def test_unknown_device():
    with pytest.raises(UnknownDeviceError, match="fpga"):
        score(random_archs(5, 0), "fpgaa")
    with pytest.raises(ModnasError):
        true_front("no_such_device")


def test_custom_device_without_table():
    registry.register("my_board", [float(i) for i in range(1, 11)])
    with pytest.raises(ModnasError, match="no ground-truth latency table"):
        score(random_archs(5, 0), "my_board")
    with pytest.raises(ModnasError, match="energy"):
        true_front("my_board", ("error", "energy"))


# -- serialisation -------------------------------------------------------------------------------------------


def test_score_to_dict_is_json_serialisable():
    s = score(random_archs(24, 0), "fpga")
    d = json.loads(json.dumps(s.to_dict()))
    assert d["hv"] == pytest.approx(s.hv) and d["hv_ratio"] == pytest.approx(s.hv / s.true_hv)
    assert d["objectives"] == ["error", "latency"] and d["front"] == list(s.front)
    assert d["split"] == "test" and d["device"] == "fpga"
    assert set(d) >= {"igd", "igd_plus", "n_candidates", "n_valid", "n_front", "n_on_true_front"}


def test_empty_score_to_dict_has_null_igd():
    d = json.loads(json.dumps(score([], "fpga").to_dict()))
    assert d["igd"] is None and d["igd_plus"] is None
    assert d["hv"] == 0.0 and d["front"] == []


def test_score_is_a_frozen_dataclass():
    s = score(random_archs(3, 0), "fpga")
    assert isinstance(s, Score)
    with pytest.raises(AttributeError):
        s.hv = 1.0  # type: ignore[misc]
