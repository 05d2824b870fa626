"""Device profiles: validation, files, CSV import, the persistent store and registry integration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modnas.errors import ModnasError, UnknownDeviceError
from modnas.hardware import profiles
from modnas.hardware.profiles import (
    DeviceProfile,
    ProfileStore,
    load_profile,
    load_stored_devices,
    parse_profile,
    profile_from_csv,
    register_profile,
    save_profile,
)
from modnas.spaces.nb201 import index_to_string
from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES, NB201Devices, get_device
from modnas.tables.nb201 import nb201_tables

REFERENCE_ARCHS = [index_to_string(i) for i in REFERENCE_ARCH_INDICES]
FPGA_REF = [float(x) for x in nb201_tables.latency("fpga", np.asarray(REFERENCE_ARCH_INDICES))]
EXTRA = {
    index_to_string(6111): 12.5,
    index_to_string(100): 3.25,
}
LATENCIES = {**dict(zip(REFERENCE_ARCHS, [3.1, 4.0, 1.2, 4.4, 6.3, 5.1, 5.0, 9.8, 3.3, 15.2])), **EXTRA}


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    """Every test gets its own MODNAS_HOME; nothing touches the real ~/.modnas."""
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


#: A fixed creation time: profiles made a second apart by a slow machine must still compare equal.
CREATED = "2025-01-01T12:00:00+00:00"


def make(name: str = "my_phone", latencies: dict[str, float] | None = None, **fields) -> DeviceProfile:
    fields.setdefault("created", CREATED)
    return DeviceProfile(name=name, latencies_ms=dict(latencies or LATENCIES), **fields)


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(exc.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message


# -- the model ---------------------------------------------------------------------------------------------------


def test_embedding_is_derived_from_reference_latencies_like_builtin_devices():
    profile = make("fpga_copy", dict(zip(REFERENCE_ARCHS, FPGA_REF)))
    assert profile.embedding == pytest.approx(get_device("fpga").embedding.tolist(), abs=1e-6)
    assert len(profile.embedding) == 10


def test_keys_are_canonicalised_references_first():
    messy = {f"  {arch} ": value for arch, value in reversed(list(LATENCIES.items()))}
    profile = make(latencies=messy)
    assert list(profile.latencies_ms) == REFERENCE_ARCHS + list(EXTRA)[::-1]
    assert profile.reference_latencies == list(LATENCIES.values())[:10]
    assert profile.extra_latencies == dict(reversed(list(EXTRA.items())))


def test_integer_latencies_are_fine_and_file_embedding_within_tolerance_is_accepted():
    ints = {arch: round(v * 10) for arch, v in LATENCIES.items()}
    profile = make(latencies=ints)
    nudged = [x + 5e-5 for x in profile.embedding]
    again = make(latencies=ints, embedding=nudged)
    assert again.embedding == profile.embedding


def test_profile_json_round_trip(tmp_path):
    profile = make(batch_size=4, processor="Cortex-A76", torch_version="2.13.0", threads=4, source="csv")
    path = save_profile(profile, tmp_path / "p.json")
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["unit"] == "ms" and len(data["embedding"]) == 10
    loaded = load_profile(path)
    assert loaded == profile
    assert list(loaded.latencies_ms) == list(profile.latencies_ms)


@pytest.mark.parametrize(
    ("mutate", "needles"),
    [
        (lambda d: d.update(latencies_ms=dict(list(d["latencies_ms"].items())[:9])),
         ("9 measured architectures", "at least 10", REFERENCE_ARCHS[9])),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[2]: 0}), (REFERENCE_ARCHS[2], "> 0")),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[2]: -1.5}), (REFERENCE_ARCHS[2], "-1.5")),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[1]: float("nan")}), (REFERENCE_ARCHS[1], "NaN")),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[7]: float("inf")}), (REFERENCE_ARCHS[7], "inf")),
        (lambda d: d["latencies_ms"].update({list(EXTRA)[0]: float("-inf")}), (list(EXTRA)[0], "inf")),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[3]: "4.4"}), (REFERENCE_ARCHS[3], "number")),
        (lambda d: d["latencies_ms"].update({REFERENCE_ARCHS[3]: True}), (REFERENCE_ARCHS[3], "number")),
        (lambda d: d["latencies_ms"].update({"|nor_conv_3x3~0|+|none~0|": 1.0}), ("malformed",)),
        (lambda d: d["latencies_ms"].update({"|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|": 1.0}),
         ("conv_5x5",)),
        (lambda d: d["latencies_ms"].update({f" {REFERENCE_ARCHS[0]}": 2.0}), ("twice", REFERENCE_ARCHS[0])),
        (lambda d: d.update(embedding=[0.5] * 9), ("embedding has 9 values",)),
        (lambda d: d.update(embedding=[0.5] * 11), ("embedding has 11 values",)),
        (lambda d: d.update(embedding=[1.0] + d["embedding"][1:]), ("embedding value 1",)),
        (lambda d: d.update(embedding="0.1"), ("embedding",)),
        (lambda d: d.update(name="../evil"), ("invalid device name", "../evil")),
        (lambda d: d.update(name=""), ("invalid device name",)),
        (lambda d: d.update(name="my phone"), ("invalid device name",)),
        (lambda d: d.update(name=7), ("invalid device name",)),
        (lambda d: d.pop("name"), ("'name'", "missing")),
        (lambda d: d.pop("latencies_ms"), ("'latencies_ms'", "missing")),
        (lambda d: d.update(latencies_ms=[1, 2, 3]), ("latencies_ms",)),
        (lambda d: d.update(batch_size=0), ("batch_size",)),
        (lambda d: d.update(unit="s"), ("unit",)),
        (lambda d: d.update(format_version=2), ("format_version",)),
        (lambda d: d.update(created="last tuesday"), ("last tuesday",)),
        (lambda d: d.update(latency_ms={}), ("unknown profile key", "latency_ms")),
    ],
)
def test_load_profile_refuses_bad_files_naming_the_problem(tmp_path, mutate, needles):
    data = make().to_json()
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))  # json writes NaN / Infinity tokens, which json.loads reads back
    with pytest.raises(ModnasError) as exc:
        load_profile(path)
    assert_one_line(exc, str(path), *needles)


def test_all_equal_reference_latencies_are_refused():
    with pytest.raises(ModnasError, match="all equal"):
        make(latencies=dict.fromkeys(REFERENCE_ARCHS, 2.0))


def test_load_profile_refuses_missing_file_bad_json_and_non_objects(tmp_path):
    with pytest.raises(ModnasError) as exc:
        load_profile(tmp_path / "nope.json")
    assert_one_line(exc, "nope.json", "does not exist")
    with pytest.raises(ModnasError) as exc:
        load_profile(write_json(tmp_path / "broken.json", '{"name": "x", '))
    assert_one_line(exc, "broken.json", "invalid JSON", "line 1")
    with pytest.raises(ModnasError) as exc:
        load_profile(write_json(tmp_path / "cut.json", '{"name": "x'))
    assert_one_line(exc, "cut.json", "Unterminated string starting at line 1, column 10")
    with pytest.raises(ModnasError) as exc:
        load_profile(write_json(tmp_path / "list.json", [1, 2]))
    assert_one_line(exc, "list.json", "JSON object")
    with pytest.raises(ModnasError) as exc:
        load_profile(tmp_path)
    assert_one_line(exc, "is a directory")


def test_direct_construction_raises_one_line_modnas_error():
    with pytest.raises(ModnasError) as exc:
        DeviceProfile(name="x", latencies_ms={})
    assert_one_line(exc, "0 measured architectures", "at least 10")
    with pytest.raises(ModnasError) as exc:
        parse_profile("not a dict", origin="somewhere")
    assert_one_line(exc, "somewhere", "JSON object")


def test_make_does_not_depend_on_the_clock(monkeypatch):
    """Two profiles made on either side of a second boundary are equal (the clock is faked to tick per call)."""
    from datetime import datetime, timedelta

    ticks = iter(range(60))

    class TickingClock(datetime):
        @classmethod
        def now(cls, tz=None):  # each call is one second later
            return datetime(2025, 1, 1, 12, 0, 0, tzinfo=tz) + timedelta(seconds=next(ticks))

    monkeypatch.setattr(profiles, "datetime", TickingClock)
    assert DeviceProfile(name="x", latencies_ms=LATENCIES) != DeviceProfile(name="x", latencies_ms=LATENCIES)
    assert make() == make()
    assert make("b_board") == make("b_board")


def test_save_profile_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("precious")
    with pytest.raises(ModnasError) as exc:
        save_profile(make(), path)
    assert_one_line(exc, "already exists", "--force")
    assert path.read_text() == "precious"
    save_profile(make(), path, force=True)
    assert load_profile(path) == make()
    with pytest.raises(ModnasError, match="directory"):
        save_profile(make(), tmp_path, force=True)


# -- CSV ---------------------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[str, object]], header: str = "arch_str,latency_ms") -> Path:
    lines = [header] + [f"{arch},{lat}" for arch, lat in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_profile_from_csv_keeps_extra_architectures(tmp_path):
    path = write_csv(tmp_path / "lat.csv", list(LATENCIES.items()))
    profile = profile_from_csv("jetson", path, batch_size=8)
    assert profile.name == "jetson" and profile.source == "csv" and profile.batch_size == 8
    assert profile.latencies_ms == LATENCIES
    assert profile.extra_latencies == EXTRA
    assert profile.embedding == make().embedding


def test_profile_from_csv_accepts_extra_columns_comments_and_a_bom(tmp_path):
    lines = ["\ufeff# measured on my board", "arch_str,latency_ms,note"]
    lines += [f"{arch},{lat},x" for arch, lat in LATENCIES.items()]
    path = tmp_path / "lat.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert profile_from_csv("board", path).latencies_ms == LATENCIES


@pytest.mark.parametrize(
    ("rows", "header", "needles"),
    [
        (list(LATENCIES.items())[3:], "arch_str,latency_ms", ("9 measured architectures", REFERENCE_ARCHS[0])),
        (list(LATENCIES.items()) + [(REFERENCE_ARCHS[5], 9.0)], "arch_str,latency_ms",
         ("row 14", "row 7", REFERENCE_ARCHS[5])),
        ([(REFERENCE_ARCHS[0], "fast")] + list(LATENCIES.items())[1:], "arch_str,latency_ms",
         ("row 2", "'fast'", "not a number")),
        ([(REFERENCE_ARCHS[0], "nan")] + list(LATENCIES.items())[1:], "arch_str,latency_ms",
         (REFERENCE_ARCHS[0], "NaN")),
        ([(REFERENCE_ARCHS[0], "-3")] + list(LATENCIES.items())[1:], "arch_str,latency_ms",
         (REFERENCE_ARCHS[0], "-3")),
        ([("|bogus|", 1.0)] + list(LATENCIES.items()), "arch_str,latency_ms", ("row 2", "malformed")),
        (list(LATENCIES.items()), "arch,latency", ("arch_str", "latency_ms")),
        ([], "arch_str,latency_ms", ("no latencies",)),
    ],
)
def test_profile_from_csv_refuses_bad_files(tmp_path, rows, header, needles):
    path = write_csv(tmp_path / "lat.csv", rows, header)
    with pytest.raises(ModnasError) as exc:
        profile_from_csv("board", path)
    assert_one_line(exc, "lat.csv", *needles)


def test_profile_from_csv_refuses_missing_file_and_bad_name(tmp_path):
    with pytest.raises(ModnasError, match="does not exist"):
        profile_from_csv("board", tmp_path / "nope.csv")
    path = write_csv(tmp_path / "lat.csv", list(LATENCIES.items()))
    with pytest.raises(ModnasError, match="invalid device name"):
        profile_from_csv("a/b", path)


# -- the store ---------------------------------------------------------------------------------------------------


def test_store_lives_under_modnas_home(home, monkeypatch, tmp_path):
    assert ProfileStore().root == home / "devices"
    monkeypatch.delenv("MODNAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert ProfileStore().root == tmp_path / "user" / ".modnas" / "devices"


def test_store_add_load_names_all_remove(home):
    store = ProfileStore()
    assert store.names() == () and store.all() == []
    path = store.add(make("b_board"))
    store.add(make("a_phone"))
    assert path == home / "devices" / "b_board.json"
    assert store.names() == ("a_phone", "b_board")
    assert store.load("b_board") == make("b_board")
    assert [p.name for p in store.all()] == ["a_phone", "b_board"]
    store.remove("a_phone")
    assert store.names() == ("b_board",)
    with pytest.raises(UnknownDeviceError, match="a_phone"):
        store.remove("a_phone")
    with pytest.raises(UnknownDeviceError, match="a_phone"):
        store.load("a_phone")


def test_store_refuses_duplicates_unless_forced_and_keeps_the_file(home):
    store = ProfileStore()
    store.add(make("board"))
    before = store.path("board").read_text()
    changed = dict(LATENCIES, **{REFERENCE_ARCHS[0]: 99.0})
    with pytest.raises(ModnasError) as exc:
        store.add(make("board", changed))
    assert_one_line(exc, "'board'", "already stored", "--force")
    assert store.path("board").read_text() == before
    store.add(make("board", changed), force=True)
    assert store.load("board").latencies_ms[REFERENCE_ARCHS[0]] == 99.0


@pytest.mark.parametrize("name", ["fpga", "1080ti_1", "titanxp_32"])
def test_store_refuses_builtin_names_even_with_force(home, name):
    store = ProfileStore()
    for force in (False, True):
        with pytest.raises(ModnasError) as exc:
            store.add(make(name), force=force)
        assert_one_line(exc, repr(name), "built-in")
    assert not (home / "devices" / f"{name}.json").exists()
    with pytest.raises(ModnasError, match="built-in"):
        store.remove(name)


def test_store_names_a_corrupt_or_misnamed_file(home):
    store = ProfileStore()
    store.add(make("good"))
    (home / "devices" / "broken.json").write_text("{")
    with pytest.raises(ModnasError) as exc:
        store.all()
    assert_one_line(exc, "broken.json", "invalid JSON")
    (home / "devices" / "broken.json").unlink()
    (home / "devices" / "renamed.json").write_text((home / "devices" / "good.json").read_text())
    with pytest.raises(ModnasError) as exc:
        store.load("renamed")
    assert_one_line(exc, "renamed.json", "'good'")
    (home / "devices" / "renamed.json").rename(home / "devices" / "bad name.json")
    with pytest.raises(ModnasError) as exc:
        store.all()
    assert_one_line(exc, "bad name.json", "invalid device name")


def test_store_ignores_temporary_files_of_atomic_writes(home):
    store = ProfileStore()
    store.add(make("good"))
    (home / "devices" / ".good.json.abc.tmp").write_text("{")
    (home / "devices" / ".hidden.json").write_text("{")
    assert store.names() == ("good",)


# -- registry ----------------------------------------------------------------------------------------------------


def test_register_profile_keeps_extra_latencies_for_few_shot():
    registry = NB201Devices()
    profile = make(batch_size=2, processor="Cortex-A76")
    device = registry.get(register_profile(profile, registry).name)
    assert device.split == "custom" and device.kind == "custom" and device.batch_size == 2
    assert list(device.reference_latencies) == profile.reference_latencies
    assert dict(device.extra_latencies) == EXTRA
    assert device.embedding.tolist() == pytest.approx(profile.embedding, abs=1e-6)
    assert "Cortex-A76" in device.description
    with pytest.raises(ModnasError, match="already registered"):
        register_profile(profile, registry)
    changed = make(latencies=dict(LATENCIES, **{REFERENCE_ARCHS[9]: 30.0}))
    assert register_profile(changed, registry, force=True).reference_latencies[9] == 30.0


def test_load_stored_devices_registers_every_profile(home):
    store = ProfileStore()
    store.add(make("one"))
    store.add(make("two", dict(zip(REFERENCE_ARCHS, FPGA_REF))))
    registry = NB201Devices()
    loaded = load_stored_devices(registry, store)
    assert [d.name for d in loaded] == ["one", "two"]
    assert registry.names("custom") == ("one", "two")
    assert registry.get("two").embedding.tolist() == pytest.approx(get_device("fpga").embedding.tolist())


def test_load_stored_devices_names_the_bad_file(home):
    store = ProfileStore()
    store.add(make("one"))
    (home / "devices" / "two.json").write_text(json.dumps({"name": "two", "latencies_ms": {}}))
    with pytest.raises(ModnasError) as exc:
        load_stored_devices(NB201Devices(), store)
    assert_one_line(exc, "two.json", "missing")
    # a hand-placed profile named like a built-in device is refused, naming its file
    (home / "devices" / "two.json").unlink()
    (home / "devices" / "fpga.json").write_text(json.dumps(make("fpga").to_json()))
    with pytest.raises(ModnasError) as exc:
        load_stored_devices(NB201Devices(), store)
    assert_one_line(exc, "fpga.json", "built-in")


@pytest.fixture
def global_registry():
    """A fresh NB201 device set, so tests cannot leak devices into each other."""
    return NB201Devices()


def test_stored_devices_load_once_into_the_device_set(home, global_registry, monkeypatch):
    ProfileStore().add(make("lab_gpu"))
    calls = []
    real = profiles.load_stored_devices
    monkeypatch.setattr(profiles, "load_stored_devices", lambda *a, **k: calls.append(a) or real(*a, **k))
    global_registry.ensure_profiles_loaded()
    global_registry.ensure_profiles_loaded()
    assert global_registry.get("lab_gpu").split == "custom"  # get loads too, but only once
    assert len(calls) == 1
    assert dict(global_registry.get("lab_gpu").extra_latencies) == EXTRA


def test_a_corrupt_stored_profile_only_fails_the_commands_that_use_it(home, global_registry, caplog):
    """One corrupt file in MODNAS_HOME made every command fail, even those on built-in devices."""
    ProfileStore().add(make("lab_gpu"))
    (home / "devices" / "bad.json").write_text("[")
    with caplog.at_level("WARNING"):
        global_registry.ensure_profiles_loaded()
    assert "bad.json" in caplog.text and "invalid JSON" in caplog.text
    assert global_registry.get("lab_gpu").split == "custom"
    assert global_registry.get("fpga").split == "test"
    with pytest.raises(ModnasError) as exc:
        global_registry.get("bad")
    assert_one_line(exc, "bad.json", "invalid JSON", "cannot be used")
    # fixed by storing a good profile under the name
    ProfileStore().add(make("bad"), force=True)
    global_registry.sync_profile(ProfileStore(), "bad")
    assert global_registry.get("bad").name == "bad"


def test_sync_profile_follows_add_and_remove(home, global_registry):
    store = ProfileStore()
    global_registry.sync_profile(store, "late")  # not loaded yet: nothing to do
    assert "late" not in global_registry._custom
    global_registry.ensure_profiles_loaded()
    store.add(make("late"))
    global_registry.sync_profile(store, "late")
    assert global_registry.get("late").name == "late"
    store.remove("late")
    global_registry.sync_profile(store, "late")
    assert "late" not in global_registry.names("custom")
