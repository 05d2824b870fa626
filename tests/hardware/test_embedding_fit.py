"""Device embeddings fitted from any measured architectures: recovery, consistency, determinism, refusals, wiring."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from typer.testing import CliRunner

from modnas.errors import ModnasError
from modnas.hardware import embedding_fit
from modnas.hardware.devices import normalise_reference_latencies
from modnas.hardware.embedding_fit import EmbeddingFit, fit_embedding, starting_embeddings
from modnas.hardware.predictor import load_predictor
from modnas.hardware.profiles import (
    DeviceProfile,
    ProfileStore,
    load_profile,
    profile_from_csv,
    register_profile,
)
from modnas.hardware.training import adapt, over_all_archs, predict_normalised, to_device_unit
from modnas.spaces.nb201 import index_to_string, to_index
from modnas.spaces.nb201.devices import (
    REFERENCE_ARCH_INDICES,
    TRAIN_DEVICES,
    NB201Devices,
    all_onehots,
    normalised_table,
    registry,
)
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

NON_REFERENCE = np.setdiff1d(np.arange(NUM_ARCHS), REFERENCE_ARCH_INDICES)
#: A made-up device: pixel3's latencies in another unit (x 3.7). No training device but pixel3 ranks its
#: architectures with Spearman above 0.86 under the shipped predictor (the next best, samsung_a50's embedding,
#: reaches 0.86; GPU embeddings 0.60-0.75), so a fit that ranks above 0.95 must have found pixel3's embedding
#: region from the measurements, not merely kept some plausible start.
SCALE = 3.7


@pytest.fixture(scope="module")
def predictor():
    return load_predictor()[0]


def random_measurements(device: str, k: int, seed: int, scale: float = 1.0) -> dict[str, float]:
    idx = np.random.default_rng(seed).choice(NON_REFERENCE, size=k, replace=False)
    true = nb201_tables.full_column("latency", device)
    return {str(nb201_tables.arch_strings[i]): scale * float(true[i]) for i in idx}


def rho_over_all(model, embeddings, truth: np.ndarray) -> np.ndarray:
    """Spearman over all 15,625 architectures of the zero-shot prediction with each of ``embeddings`` ``(D, 10)``."""
    emb = torch.tensor(np.atleast_2d(np.asarray(embeddings)), dtype=torch.float32)
    predicted = over_all_archs(lambda x: model(x, emb), all_onehots()).numpy()
    return np.array([spearmanr(predicted[:, d], truth)[0] for d in range(len(emb))])


@pytest.fixture(scope="module")
def training_embeddings() -> np.ndarray:
    return np.stack([registry.get(d).embedding for d in TRAIN_DEVICES])


@pytest.fixture(scope="module")
def pixel3_fit(predictor) -> tuple[dict[str, float], EmbeddingFit]:
    torch.set_num_threads(1)
    measured = random_measurements("pixel3", 30, seed=0, scale=SCALE)
    return measured, fit_embedding(measured, registry, predictor, seed=0)


def test_fit_recovers_the_ranking_of_a_rescaled_training_device(predictor, pixel3_fit, training_embeddings):
    _, fit = pixel3_fit
    truth = normalised_table("pixel3")
    rho = rho_over_all(predictor, [fit.embedding, *training_embeddings], truth)
    assert rho[0] > 0.95
    # the threshold discriminates: every other training device's embedding ranks pixel3 worse
    assert max(r for r, d in zip(rho[1:], TRAIN_DEVICES) if d != "pixel3") < 0.9
    # and the affine map recovers the unit: RMS error of the fitted ms below 10% of the measurements' spread
    measured = np.asarray(list(pixel3_fit[0].values()))
    assert fit.rmse < 0.1 * measured.std()


def test_fit_on_a_device_between_training_devices(predictor, training_embeddings):
    """A synthetic device half pixel3, half 1080ti_256 (no training device): the fit ranks it better than any
    single training device's embedding does."""
    truth = 0.5 * normalised_table("pixel3") + 0.5 * normalised_table("1080ti_256")
    latency = 2.0 + 10.0 * truth
    idx = np.random.default_rng(1).choice(NON_REFERENCE, size=40, replace=False)
    measured = {str(nb201_tables.arch_strings[i]): float(latency[i]) for i in idx}
    fit = fit_embedding(measured, registry, predictor, seed=0)
    rho = rho_over_all(predictor, [fit.embedding, *training_embeddings], truth)
    assert rho[0] > max(rho[1:])


def test_fitted_device_is_consistent_with_the_reference_normalised_predictor(predictor, pixel3_fit):
    measured, fit = pixel3_fit
    e = np.asarray(fit.embedding)
    assert e.min() == 0.0 and e.max() == 1.0  # like every real embedding
    np.testing.assert_allclose(normalise_reference_latencies(fit.reference_latencies), e, atol=1e-6)
    device = NB201Devices().register("fitted", fit.reference_latencies, extra_latencies=measured,
                                       references_measured=False)  # fmt: skip
    np.testing.assert_allclose(device.embedding, e, atol=1e-6)
    onehot = all_onehots()[to_index(list(measured))]
    ms = to_device_unit(predict_normalised(predictor, onehot, device), device)
    f = predict_normalised(predictor, onehot, device)
    np.testing.assert_allclose(ms, fit.offset + fit.scale * f, rtol=1e-5)
    y = np.asarray(list(measured.values()))
    assert np.sqrt(np.mean((ms - y) ** 2)) == pytest.approx(fit.rmse, rel=1e-3)


def test_fit_is_deterministic_given_a_seed(predictor):
    measured = random_measurements("silver_4114", 12, seed=3)
    quick = functools.partial(fit_embedding, measured, registry, predictor, steps=15)
    assert quick(seed=4) == quick(seed=4)
    assert not np.array_equal(starting_embeddings(4, registry), starting_embeddings(5, registry))
    # the training devices' embeddings are always among the starts
    np.testing.assert_array_equal(starting_embeddings(4, registry)[: len(TRAIN_DEVICES)],
                                  np.stack([registry.get(d).embedding for d in TRAIN_DEVICES]))  # fmt: skip


def test_fit_leaves_the_predictor_as_it_was(predictor):
    before = {k: v.clone() for k, v in predictor.state_dict().items()}
    flags = [p.requires_grad for p in predictor.parameters()]
    fit_embedding(random_measurements("pixel3", 10, seed=2), registry, predictor, steps=3)
    assert all(torch.equal(before[k], v) for k, v in predictor.state_dict().items())
    assert [p.requires_grad for p in predictor.parameters()] == flags and not predictor.training


# -- refusals ---------------------------------------------------------------------------------------------------

GOOD = random_measurements("pixel3", 12, seed=5)
FIRST = next(iter(GOOD))


@pytest.mark.parametrize(
    ("measured", "needles"),
    [
        (dict(list(GOOD.items())[:9]), ("9 measured architectures", "at least 10")),
        ({}, ("0 measured architectures", "at least 10")),
        ({**GOOD, FIRST: float("nan")}, (FIRST, "NaN")),
        ({**GOOD, FIRST: float("inf")}, (FIRST, "inf")),
        ({**GOOD, FIRST: -2.0}, (FIRST, "-2", "> 0")),
        ({**GOOD, FIRST: 0.0}, (FIRST, "is 0", "> 0")),
        ({**GOOD, f"  {FIRST} ": 1.0}, ("twice", FIRST)),  # the same architecture in another spelling
        ({**GOOD, "|conv~0|": 1.0}, ("conv",)),
        (dict.fromkeys(GOOD, 2.0), ("all equal",)),
    ],
)
@pytest.mark.parametrize("route", ["fit", "register", "profile"])
def test_bad_measurements_are_refused_in_one_line(predictor, measured, needles, route):
    attempt = {
        "fit": lambda: fit_embedding(measured, registry, predictor, steps=1),
        "register": lambda: NB201Devices().register("bad", measured),
        "profile": lambda: DeviceProfile(name="bad", latencies_ms=measured),
    }[route]
    with pytest.raises(ModnasError) as exc:
        attempt()
    message = str(exc.value)
    assert "\n" not in message and all(n in message for n in needles), message


def test_duplicate_keys_in_a_profile_file_are_refused(tmp_path):
    arch, value = FIRST, GOOD[FIRST]
    body = ", ".join(f'"{a}": {v}' for a, v in GOOD.items())
    path = tmp_path / "dup.json"
    path.write_text(f'{{"name": "dup", "latencies_ms": {{{body}, "{arch}": {value + 1}}}}}')
    with pytest.raises(ModnasError, match="listed twice") as exc:
        load_profile(path)
    assert "dup.json" in str(exc.value) and "\n" not in str(exc.value)


def test_csv_with_a_duplicate_in_another_spelling_is_refused(tmp_path):
    path = tmp_path / "l.csv"
    rows = [*(f"{a},{v}" for a, v in GOOD.items()), f"  {FIRST} ,1.5"]
    path.write_text("arch_str,latency_ms\n" + "\n".join(rows) + "\n")
    with pytest.raises(ModnasError, match="already given in row 2"):
        profile_from_csv("x", path)


# -- registration, profiles, adaptation, CLI --------------------------------------------------------------------


@pytest.fixture
def quick_fit(monkeypatch):
    """Registration and profiles fit with the shipped predictor; a few steps suffice to test the wiring."""
    monkeypatch.setattr(embedding_fit, "FIT_STEPS", 5)
    original = embedding_fit.fit_embedding
    monkeypatch.setattr(embedding_fit, "fit_embedding", functools.partial(original, steps=5))


def test_register_a_mapping_without_the_references_fits_the_embedding(quick_fit):
    measured = random_measurements("pixel3", 12, seed=6)
    devices = NB201Devices()
    device = devices.register("phone", measured)
    assert not device.references_measured
    assert dict(device.extra_latencies) == measured
    assert device.embedding.min() == 0.0 and device.embedding.max() == pytest.approx(1.0)
    # the synthetic references are not measurements
    known = devices.known_latencies(device, [index_to_string(REFERENCE_ARCH_INDICES[0])])
    assert np.isnan(known[0])
    first = next(iter(measured))
    assert devices.known_latencies(device, [first])[0] == next(iter(measured.values()))


def test_register_with_all_references_is_unchanged(quick_fit, monkeypatch):
    monkeypatch.setattr(embedding_fit, "fit_embedding", lambda *a, **k: pytest.fail("must not fit"))
    fpga = registry.get("fpga")
    mapping = {index_to_string(i): v for i, v in zip(REFERENCE_ARCH_INDICES, fpga.reference_latencies)}
    device = NB201Devices().register("board", {**mapping, **random_measurements("fpga", 3, seed=0)})
    assert device.references_measured and device.reference_latencies == fpga.reference_latencies
    assert len(device.extra_latencies) == 3


def test_references_measured_false_needs_ten_measurements():
    with pytest.raises(ModnasError, match="at least 10"):
        NB201Devices().register("x", list(range(1, 11)), extra_latencies=random_measurements("fpga", 9, 0),
                                  references_measured=False)  # fmt: skip


def test_profile_stores_the_fit_and_loads_without_refitting(quick_fit, monkeypatch, tmp_path):
    measured = random_measurements("raspi4", 11, seed=7)
    profile = DeviceProfile(name="pi", latencies_ms=measured)
    assert profile.embedding_fit is not None and profile.embedding_fit.measurements == 11
    assert profile.extra_latencies == measured and len(profile.reference_latencies) == 10
    np.testing.assert_allclose(profile.embedding, normalise_reference_latencies(profile.reference_latencies),
                               atol=1e-6)  # fmt: skip
    path = tmp_path / "pi.json"
    path.write_text(json.dumps(profile.to_json()))
    monkeypatch.setattr(embedding_fit, "fit_embedding", lambda *a, **k: pytest.fail("must not refit"))
    again = load_profile(path)
    assert again == profile
    device = register_profile(again, NB201Devices())
    assert not device.references_measured and dict(device.extra_latencies) == measured
    np.testing.assert_allclose(device.embedding, profile.embedding, atol=1e-6)


def test_an_edited_profile_is_fitted_again(quick_fit, tmp_path):
    measured = random_measurements("raspi4", 11, seed=7)
    data = DeviceProfile(name="pi", latencies_ms=measured).to_json()
    first = next(iter(measured))
    data["latencies_ms"][first] *= 2
    del data["embedding"]
    path = tmp_path / "pi.json"
    path.write_text(json.dumps(data))
    edited = load_profile(path)
    assert edited.embedding_fit.digest != data["embedding_fit"]["digest"]


def test_profile_with_the_references_has_no_fit_field():
    fpga = registry.get("fpga")
    mapping = {index_to_string(i): v for i, v in zip(REFERENCE_ARCH_INDICES, fpga.reference_latencies)}
    profile = DeviceProfile(name="board", latencies_ms=mapping)
    assert profile.embedding_fit is None and "embedding_fit" not in profile.to_json()
    data = profile.to_json()
    data["embedding_fit"] = {"reference_ms": [1.0] * 9 + [2.0], "measurements": 10, "digest": "x",
                             "rmse_ms": 0.0}  # fmt: skip
    with pytest.raises(ModnasError, match="only for profiles without"):
        DeviceProfile(**data)


def test_adapt_a_fitted_device_on_its_measurements_only(predictor, pixel3_fit):
    measured, fit = pixel3_fit
    device = NB201Devices().register("fitted", fit.reference_latencies, extra_latencies=measured,
                                       references_measured=False)  # fmt: skip
    onehot = all_onehots()[to_index(list(measured))]
    y = np.asarray(list(measured.values()))

    def error(model) -> float:
        return float(np.mean(((to_device_unit(predict_normalised(model, onehot, device), device) - y) / y) ** 2))

    tuned = adapt(predictor, device, steps=40, lr=1e-3)
    assert error(tuned) < error(predictor)
    # the synthetic reference latencies are no training targets: with no measurements there is nothing to fit
    with pytest.raises(ModnasError, match="no measured latencies"):
        adapt(predictor, device, measurements={}, steps=1)


def test_cli_add_reports_the_fit(quick_fit, monkeypatch, tmp_path):
    from modnas.commands.device import app
    # the NB201 device set is reset after each test (conftest)
    measured = random_measurements("eyeriss", 14, seed=8)
    csv = tmp_path / "l.csv"
    csv.write_text("arch_str,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in measured.items()))
    result = CliRunner().invoke(app, ["add", "--name", "asic", "--latencies", str(csv)])
    assert result.exit_code == 0, result.output
    assert "embedding fitted from 14 measured architectures" in result.stdout
    stored = ProfileStore().load("asic")
    assert stored.embedding_fit is not None and stored.latencies_ms == measured
    few = tmp_path / "few.csv"
    few.write_text("arch_str,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in list(measured.items())[:9]))
    result = CliRunner().invoke(app, ["add", "--name", "asic2", "--latencies", str(few)])
    assert result.exit_code == 2 and "at least 10" in result.stderr and len(result.stderr.strip().splitlines()) == 1
