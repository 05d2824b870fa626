"""``modnas device``: measure, add, list, remove, and one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from modnas.commands.device import app
from modnas.hardware import profiles
from modnas.hardware.profiles import DeviceProfile, ProfileStore, load_profile
from modnas.spaces.nb201 import index_to_string
from modnas.spaces.nb201.devices import REFERENCE_ARCH_INDICES, nb201_devices

runner = CliRunner()
REFERENCE_ARCHS = [index_to_string(i) for i in REFERENCE_ARCH_INDICES]
EXTRA = {index_to_string(6111): 12.5, index_to_string(100): 3.25, index_to_string(7): 2.0}
LATENCIES = {**dict(zip(REFERENCE_ARCHS, [3.1, 4.0, 1.2, 4.4, 6.3, 5.1, 5.0, 9.8, 3.3, 15.2])), **EXTRA}


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    """Own MODNAS_HOME and working directory per test (conftest resets the NB201 device set after each)."""
    monkeypatch.setenv("MODNAS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def run(*args: str):
    return runner.invoke(app, list(args))


def profile_file(path: Path, name: str = "my_phone", latencies: dict[str, float] | None = None) -> Path:
    path.write_text(json.dumps(DeviceProfile(name=name, latencies_ms=dict(latencies or LATENCIES)).to_json()))
    return path


def csv_file(path: Path, rows: dict[str, object]) -> Path:
    path.write_text("arch_str,latency_ms\n" + "".join(f"{a},{v}\n" for a, v in rows.items()))
    return path


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message


def test_add_profile_json_stores_it_and_reports_few_shot_architectures(home, tmp_path):
    result = run("add", str(profile_file(tmp_path / "p.json")))
    assert result.exit_code == 0, result.output
    assert "3 architectures beyond the 10" in result.stdout
    assert "embedding:" in result.stdout
    stored = ProfileStore().load("my_phone")
    assert stored.latencies_ms == LATENCIES


def test_add_csv_route(home, tmp_path):
    result = run("add", "--name", "jetson", "--latencies", str(csv_file(tmp_path / "l.csv", LATENCIES)),
                 "--batch-size", "8")  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = ProfileStore().load("jetson")
    assert stored.source == "csv" and stored.batch_size == 8 and stored.extra_latencies == EXTRA
    reference_only = dict(list(LATENCIES.items())[:10])
    result = run("add", "--name", "tiny", "--latencies", str(csv_file(tmp_path / "r.csv", reference_only)))
    assert result.exit_code == 0 and "0 architectures beyond the 10" in result.stdout


def test_add_refuses_duplicates_unless_forced_keeping_the_stored_file(home, tmp_path):
    assert run("add", str(profile_file(tmp_path / "a.json"))).exit_code == 0
    stored = home / "devices" / "my_phone.json"
    before = stored.read_text()
    changed = profile_file(tmp_path / "b.json", latencies=dict(LATENCIES, **{REFERENCE_ARCHS[0]: 77.0}))
    assert_user_error(run("add", str(changed)), "my_phone", "already stored", "--force")
    assert stored.read_text() == before
    assert run("add", str(changed), "--force").exit_code == 0
    assert load_profile(stored).latencies_ms[REFERENCE_ARCHS[0]] == 77.0


def test_list_json_and_remove(home, tmp_path):
    assert json.loads(run("list", "--json").stdout) == []
    assert "no stored devices" in run("list").stdout
    run("add", str(profile_file(tmp_path / "a.json", name="b_dev")))
    reference_only = csv_file(tmp_path / "l.csv", dict(list(LATENCIES.items())[:10]))
    run("add", "--name", "a_dev", "--latencies", str(reference_only))
    rows = json.loads(run("list", "--json").stdout)
    assert [r["name"] for r in rows] == ["a_dev", "b_dev"]
    assert [r["n_measurements"] for r in rows] == [10, 13] and [r["n_extra"] for r in rows] == [0, 3]
    assert rows[1]["embedding"] == DeviceProfile(name="x", latencies_ms=LATENCIES).embedding
    assert rows[0]["source"] == "csv" and Path(rows[0]["path"]) == home / "devices" / "a_dev.json"
    assert "b_dev" in run("list").stdout
    result = run("remove", "a_dev")
    assert result.exit_code == 0 and "removed" in result.stdout
    assert [r["name"] for r in json.loads(run("list", "--json").stdout)] == ["b_dev"]
    assert not (home / "devices" / "a_dev.json").exists()


def test_add_and_remove_keep_an_already_loaded_registry_in_line(home, tmp_path):
    registry = nb201_devices()
    registry.ensure_profiles_loaded()
    run("add", str(profile_file(tmp_path / "a.json")))
    assert registry.get("my_phone").split == "custom"
    run("remove", "my_phone")
    assert "my_phone" not in registry.names("custom")


def test_measure_writes_registers_and_refuses_to_overwrite(home, tmp_path):
    result = run("measure", "--name", "this_cpu", "--warmup", "0", "--repeats", "1", "--extra", "2")
    assert result.exit_code == 0, result.output
    written = tmp_path / "this_cpu.json"
    profile = load_profile(written)
    assert len(profile.latencies_ms) == 12 and profile.source == "measured" and profile.threads == 1
    assert "embedding:" in result.stdout and "registered" in result.stdout
    assert ProfileStore().load("this_cpu") == profile
    before = written.read_text()
    assert_user_error(run("measure", "--name", "this_cpu", "--repeats", "1"), "this_cpu.json", "--force")
    assert written.read_text() == before
    out = tmp_path / "sub" / "other.json"
    assert_user_error(run("measure", "--name", "this_cpu", "--repeats", "1", "--out", str(out)),
                      "already stored")  # fmt: skip
    assert not out.exists() and ProfileStore().load("this_cpu") == profile
    result = run("measure", "--name", "this_cpu", "--warmup", "0", "--repeats", "1", "--force")
    assert result.exit_code == 0, result.output
    assert written.read_text() != before
    assert len(ProfileStore().load("this_cpu").latencies_ms) == 10


def queries_file(run: Path, archs: list[str]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    (run / "queries.csv").write_text("order,arch_str,error\n" + "".join(f"{k},{a},10.0\n" for k, a in enumerate(archs)))
    return run


def test_measure_archs_from_a_run_times_its_queried_architectures(home, tmp_path):
    queried = [index_to_string(5), index_to_string(6000), REFERENCE_ARCHS[0], index_to_string(5)]
    run_dir = queries_file(tmp_path / "run", queried)
    result = run("measure", "--name", "lab", "--warmup", "0", "--repeats", "1", "--archs-from", str(run_dir),
                 "--no-register")
    assert result.exit_code == 0, result.output
    latencies = load_profile(tmp_path / "lab.json").latencies_ms
    # 10 references, plus the 2 queried ones that are neither references nor repeats
    assert len(latencies) == 12 and {index_to_string(5), index_to_string(6000)} <= set(latencies)


def test_measure_archs_from_bad_runs_is_one_line(home, tmp_path, monkeypatch):
    monkeypatch.setattr("modnas.hardware.measure.time_forward_passes", lambda *a, **k: pytest.fail("measured"))
    args = ("measure", "--name", "lab", "--no-register", "--archs-from")
    assert_user_error(run(*args, str(tmp_path / "ghost")), "ghost", "does not exist")
    (tmp_path / "oneshot").mkdir()
    assert_user_error(run(*args, str(tmp_path / "oneshot")), "queries.csv", "benchmark-mode")
    assert_user_error(run(*args, str(queries_file(tmp_path / "bad", ["|conv9x9~0|+|none~0|none~1|"]))), "conv9x9")
    assert not (tmp_path / "lab.json").exists()


def test_measure_no_register_only_writes_the_file(home, tmp_path):
    out = tmp_path / "profiles" / "lab.json"
    result = run("measure", "--name", "lab", "--warmup", "0", "--repeats", "1", "--out", str(out), "--no-register")
    assert result.exit_code == 0, result.output
    assert load_profile(out).name == "lab"
    assert ProfileStore().names() == ()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("measure", "--name", "fpga"), ("fpga", "built-in")),
        (("measure", "--name", "bad/name"), ("invalid device name",)),
        (("measure", "--name", "x", "--extra", "-1"), ("extra",)),
        (("measure", "--name", "x", "--batch-size", "0"), ("batch size",)),
        (("measure", "--name", "x", "--repeats", "0"), ("repeats",)),
        (("add",), ("PROFILE.json",)),
        (("add", "--name", "x"), ("--latencies",)),
        (("add", "nope.json"), ("nope.json", "does not exist")),
        (("add", "--name", "x", "--latencies", "nope.csv"), ("nope.csv", "does not exist")),
        (("remove", "ghost"), ("ghost",)),
        (("remove", "fpga"), ("fpga", "built-in")),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needles, monkeypatch):
    monkeypatch.setattr("modnas.hardware.measure.time_forward_passes", lambda *a, **k: pytest.fail("measured"))
    assert_user_error(run(*args), *needles)
    assert not Path("x.json").exists()


def test_measure_cuda_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_user_error(run("measure", "--name", "gpu_box", "--cuda"), "CUDA")
    assert not Path("gpu_box.json").exists()


def test_add_refuses_bad_profiles_naming_the_problem(home, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{oops")
    assert_user_error(run("add", str(bad_json)), "bad.json", "invalid JSON")
    too_few = {a: v for a, v in LATENCIES.items() if a not in REFERENCE_ARCHS[6:]}  # 6 references + 3 others
    data = DeviceProfile(name="n", latencies_ms=LATENCIES).to_json()
    data["latencies_ms"] = too_few
    del data["embedding"]
    (tmp_path / "m.json").write_text(json.dumps(data))
    assert_user_error(run("add", str(tmp_path / "m.json")), "9 measured architectures", REFERENCE_ARCHS[6])
    builtin = profile_file(tmp_path / "f.json", name="titanx_1")
    assert_user_error(run("add", str(builtin), "--force"), "titanx_1", "built-in")
    bad_csv = csv_file(tmp_path / "l.csv", {**LATENCIES, REFERENCE_ARCHS[2]: "inf"})
    assert_user_error(run("add", "--name", "x", "--latencies", str(bad_csv)), REFERENCE_ARCHS[2], "inf")
    both = ("add", str(profile_file(tmp_path / "p.json")), "--name", "x", "--latencies", str(bad_csv))
    assert_user_error(run(*both), "either")
    assert ProfileStore().names() == ()


def test_list_reports_a_corrupt_store_naming_the_file(home, tmp_path):
    run("add", str(profile_file(tmp_path / "p.json")))
    (home / "devices" / "zz.json").write_text("not json")
    assert_user_error(run("list", "--json"), "zz.json", "invalid JSON")
    assert run("remove", "zz").exit_code == 0  # a corrupt profile can still be removed
    assert run("list", "--json").exit_code == 0


def test_measure_flags_a_busy_machine_and_suggests_re_measuring(home, tmp_path, monkeypatch):
    """Repeats that disagree, or a reference network far slower than a larger one, print one warning line."""
    from modnas.tables.nb201 import nb201_tables

    ref = dict(zip(REFERENCE_ARCHS, (float(x) for x in nb201_tables.latency("gold_6240", list(REFERENCE_ARCH_INDICES)))))
    ref[REFERENCE_ARCHS[0]] *= 40  # a background job ran while this one was timed
    monkeypatch.setattr(
        "modnas.hardware.measure.time_forward_passes",
        lambda arch, *a, **k: [ref[arch] * f for f in (1.0, 1.9, 1.0, 3.0, 0.8, 1.0)],
    )
    result = run("measure", "--name", "busy", "--no-register")
    assert result.exit_code == 0, result.output
    assert load_profile(tmp_path / "busy.json").name == "busy"  # still written: the user decides
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "warning" in line and "re-measure on an idle machine" in line
    assert "repeated timings disagree" in line and "reference network 11982" in line
    monkeypatch.setattr(
        "modnas.hardware.measure.time_forward_passes",
        lambda arch, *a, **k: [1.0 + 0.1 * REFERENCE_ARCHS.index(arch)] * 5,
    )
    result = run("measure", "--name", "quiet", "--no-register")
    assert result.exit_code == 0 and "warning" not in result.stderr


def blocked(tmp_path: Path) -> Path:
    """A folder nobody can create, even root: its parent is a regular file."""
    (tmp_path / "plain_file").write_text("")
    return tmp_path / "plain_file" / "sub"


def test_measure_and_add_refuse_unwritable_targets_before_timing(home, tmp_path, monkeypatch):
    monkeypatch.setattr("modnas.hardware.measure.time_forward_passes", lambda *a, **k: pytest.fail("measured"))
    out = blocked(tmp_path) / "lab.json"
    assert_user_error(run("measure", "--name", "lab", "--out", str(out), "--no-register"), "cannot write", "lab.json")
    monkeypatch.setenv("MODNAS_HOME", str(blocked(tmp_path)))
    assert_user_error(run("measure", "--name", "lab"), "device store", "MODNAS_HOME")
    assert not Path("lab.json").exists()
    assert_user_error(run("add", str(profile_file(tmp_path / "p.json"))), "device store", "MODNAS_HOME")


def test_measure_keeps_the_timings_when_the_write_fails_after_measuring(home, tmp_path, monkeypatch):
    import errno
    import tempfile

    monkeypatch.setattr("modnas.hardware.measure.time_forward_passes", lambda arch, *a, **k: [LATENCIES[arch]])

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(profiles, "atomic_write_json", full_disk)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    result = run("measure", "--name", "lab", "--no-register")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert "No space left on device" in line and "modnas device add" in line
    (kept,) = (tmp_path / "tmp").glob("modnas-lab-*.json")
    assert str(kept) in line
    assert load_profile(kept).reference_latencies == [LATENCIES[a] for a in REFERENCE_ARCHS]
