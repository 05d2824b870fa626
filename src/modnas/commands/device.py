"""``modnas device ...``: profiles of your own hardware (measure, add, list, remove).

Stored devices live in ``$MODNAS_HOME/devices`` (default ``~/.modnas/devices``) and can be used wherever a
``--device`` of their space is taken (the space's device set loads them on first use).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modnas.commands.common import FlagsWithoutType, console, err_console, print_json, user_errors
from modnas.errors import ModnasError

#: the space of profiles that name none (``modnas.problem.DEFAULT_SPACE``; not imported, to keep start-up light)
DEFAULT_SPACE = "nb201"

app = typer.Typer(
    cls=FlagsWithoutType,
    help="Device profiles for your own hardware: measure latencies, add, list and remove stored devices.",
    no_args_is_help=True,
)

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing file or stored device.")]
SpaceOpt = Annotated[
    str, typer.Option("--space", metavar="NAME", help="Search space of the architectures (built-in name or module:attr).")
]


def _embedding_text(embedding: list[float]) -> str:
    return " ".join(f"{x:.3f}" for x in embedding)


def _store_and_sync(profile: Any, force: bool) -> Path:
    from modnas.hardware.profiles import ProfileStore, sync_stored_device

    store = ProfileStore()
    _check_store_writable(store.root)
    path = store.add(profile, force=force)
    sync_stored_device(store, profile.name, profile.space)
    return path


def _check_store_writable(root: Path) -> None:
    from modnas.io import check_writable

    try:
        check_writable(root, "device store", directory=True)
    except ModnasError as exc:
        raise ModnasError(f"{exc} (set MODNAS_HOME to a writable folder)") from None


def _check_storable(name: str, force: bool, space: str) -> None:
    """Refuse a name that cannot be stored, before spending minutes measuring."""
    from modnas.hardware.profiles import ProfileStore, builtin_device_names

    if name in builtin_device_names(space):
        raise ModnasError(f"device name {name!r} is taken by a built-in device; choose another name")
    store = ProfileStore()
    if store.path(name).exists() and not force:
        raise ModnasError(f"device {name!r} is already stored in {store.path(name)} (use --force to replace it)")
    _check_store_writable(store.root)


@app.command()
@user_errors
def measure(
    name: Annotated[str, typer.Option("--name", help="Name of the device (letters, digits, '_', '-', '.').")],
    cuda: Annotated[bool, typer.Option("--cuda", help="Time on the CUDA GPU instead of the CPU.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size of the timed forward passes.")] = 1,
    extra: Annotated[
        int, typer.Option("--extra", help="Random further architectures to time, for few-shot adaptation.")
    ] = 0,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed passes per architecture (median kept).")] = 30,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed passes per architecture first.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random extra architectures.")] = 0,
    archs_from: Annotated[
        Path | None,
        typer.Option("--archs-from", help="Also time every architecture this benchmark-mode run queried, so its "
                     "front compares them by measured latency on this device."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Profile file to write (default: NAME.json).")] = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="Also store the device for later commands.")
    ] = True,
    force: ForceOpt = False,
    space: SpaceOpt = DEFAULT_SPACE,
    sequence_length: Annotated[
        int | None, typer.Option("--sequence-length", help="GPT spaces: tokens per timed pass (default 128).")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option("--dtype", help="GPT spaces: fp32, bf16 or fp16 (default fp32).")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="GPT spaces: CPU threads while timing (default: torch's).")
    ] = None,
    validate: Annotated[
        int | None,
        typer.Option("--validate", help="GPT spaces: time N seeded random whole models and store the table sum's "
                     "Spearman, Kendall and MAPE against them (default 0)."),
    ] = None,
) -> None:
    """Time the space's reference architectures (NB201: HELP's 10), --extra random ones and, with --archs-from,
    a run's queried ones here; write and register the profile. A GPT space (gpt-s, gpt-tiny) is timed as a
    per-block latency table instead, stored with the profile as the device's latency of every architecture."""
    from modnas.errors import OutputError
    from modnas.hardware.measure import measure_device, noise_warnings
    from modnas.hardware.profiles import check_device_name, save_profile
    from modnas.io import check_writable, os_error_reason, rescue_text
    from modnas.spaces.gpt.arch import VARIANTS

    check_device_name(name)
    gpt = space in VARIANTS
    if not gpt:
        given = {"--sequence-length": sequence_length, "--dtype": dtype, "--threads": threads, "--validate": validate}
        for option, value in given.items():
            if value is not None:
                raise ModnasError(f"{option} is only for the GPT spaces ({', '.join(VARIANTS)}), not {space}")
    setting = None
    if gpt:
        setting = _gpt_setting(space, cuda, batch_size, sequence_length, dtype, threads)
        _gpt_counts(extra=extra, repeats=repeats, warmup=warmup, validate=validate or 0)
    target = out if out is not None else Path(f"{name}.json")
    if target.is_dir():
        raise ModnasError(f"{str(target)!r} is a directory, not a profile file")
    if target.exists() and not force:
        raise ModnasError(f"{str(target)!r} already exists (use --force to overwrite it)")
    check_writable(target, "profile file")
    if register:
        _check_storable(name, force, space)
    archs: list[str] = []
    if archs_from is not None:
        from modnas.search.run import queried_architectures

        archs = queried_architectures(archs_from)
        if gpt:  # checked here, not after the table is timed
            from modnas.hardware.profiles import space_devices

            archs = [space_devices(space).space.canonical_key(a) for a in archs]

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=err_console, transient=True)
    task = bar.add_task(f"timing {name}", start=False)
    shown = False

    def tick(done: int, total: int, arch: str) -> None:
        nonlocal shown
        if not shown:  # arguments passed validation: only now show the bar, so errors stay one line
            bar.start()
            bar.start_task(task)
            shown = True
        bar.update(task, completed=done, total=total)

    passes: dict[str, list[float]] = {}
    if setting is not None:
        profile = _measure_gpt(name, space, setting, archs, extra, seed, warmup, repeats, validate or 0)
        noise = []
    else:
        try:
            profile = measure_device(
                name, archs=archs, n_extra=extra, seed=seed, batch_size=batch_size, cuda=cuda,
                warmup=warmup, repeats=repeats, progress=tick, timings=passes.__setitem__, space=space,
            )  # fmt: skip
        finally:
            if shown:
                bar.stop()
        noise = noise_warnings(profile, passes)
    if noise:
        err_console.print(
            f"[bold yellow]warning:[/] these timings look disturbed ({'; '.join(noise)}); the machine was probably "
            "busy: re-measure on an idle machine (other programs closed) with --force before relying on this profile",
            highlight=False, soft_wrap=True,
        )
    try:
        save_profile(profile, target, force=force)
    except OSError as exc:  # the folder became unwritable (or the disk filled) while measuring: keep the timings
        import json

        kept = rescue_text(json.dumps(profile.to_json(), indent=2) + "\n", f"{name}.json")
        where = f"kept in {kept} (store it with `modnas device add {kept}`)" if kept else "lost"
        raise OutputError(f"writing {target} failed ({os_error_reason(exc)}); the measured profile is {where}") from None
    console.print(f"wrote {target} ({len(profile.latencies_ms)} architectures)", highlight=False)
    if profile.table is not None:
        console.print(_table_text(profile.latency_table), highlight=False)
    console.print(f"embedding: {_embedding_text(profile.embedding)}", highlight=False)
    if register:
        try:
            path = _store_and_sync(profile, force)
        except (OSError, ModnasError) as exc:
            reason = os_error_reason(exc) if isinstance(exc, OSError) else str(exc)
            raise OutputError(
                f"registering device {name!r} failed ({reason}); the profile is in {target}: store it with "
                f"`modnas device add {target}`"
            ) from None
        console.print(f"registered device {name!r} in {path}", highlight=False)


def _gpt_setting(space: str, cuda: bool, batch_size: int, sequence_length: int | None, dtype: str | None,
                 threads: int | None) -> Any:  # fmt: skip
    """The GPT latency setting of the options, checked before anything is timed."""
    import torch

    from modnas.spaces.gpt.arch import VARIANTS
    from modnas.spaces.gpt.latency import DTYPES, Setting

    if dtype is not None and dtype.lower() not in DTYPES:
        raise ModnasError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    length = 128 if sequence_length is None else sequence_length
    setting = Setting("cuda" if cuda else "cpu", batch_size, length, (dtype or "fp32").lower(), threads)
    context = VARIANTS[space].block_size
    if setting.sequence_length > context:
        raise ModnasError(f"--sequence-length {length} is longer than {space}'s context of {context} tokens")
    if cuda and not torch.cuda.is_available():
        raise ModnasError(f"CUDA was requested (--cuda), but torch {torch.__version__} sees no CUDA GPU")
    return setting


def _gpt_counts(**counts: int) -> None:
    minimum = {"repeats": 1}
    for option, value in counts.items():
        if value < minimum.get(option, 0):
            raise ModnasError(f"--{option} must be an integer >= {minimum.get(option, 0)}, got {value}")
    if 0 < counts["validate"] < 3:
        raise ModnasError(f"--validate needs at least 3 models for a rank correlation, got {counts['validate']}")


def _bar(description: str) -> Any:
    """A progress bar and its ``tick(done, total, what)``; the bar appears on the first tick."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=err_console, transient=True)
    task = bar.add_task(description, start=False)

    def tick(done: int, total: int, what: str) -> None:
        if not bar.live.is_started:
            bar.start()
            bar.start_task(task)
        bar.update(task, completed=done, total=total)

    return bar, tick


def _measure_gpt(name: str, space: str, setting: Any, archs: list[str], extra: int, seed: int, warmup: int,
                 repeats: int, validate: int) -> Any:  # fmt: skip
    """Time every part of ``space``'s models under ``setting`` (and ``validate`` whole models); the profile."""
    from modnas.hardware.profiles import profile_from_table
    from modnas.spaces.gpt.latency import measure_table, validate_table

    bar, tick = _bar(f"timing {name} ({space} parts)")
    try:
        # on an NVIDIA GPU the NVML energy counter is read too, where the driver exposes it
        cuda = setting.hardware == "cuda"
        table = measure_table(space, setting, warmup=warmup, repeats=repeats, energy=cuda, progress=tick)
    finally:
        bar.stop()
    if validate:
        bar, tick = _bar(f"validating {name} (whole models)")
        try:
            table.meta["validation"] = validate_table(table, validate, seed, warmup, repeats, progress=tick)
        finally:
            bar.stop()
    return profile_from_table(name, table, archs=archs, n_extra=extra, seed=seed)


def _table_text(table: Any) -> str:
    text = f"latency table: {table.setting.label}, {len(table.latency_ms)} parts"
    check = table.meta.get("validation")
    if check:
        text += (f"; on {check['count']} random whole models the table sum has Spearman {check['spearman']:.3f}, "
                 f"Kendall {check['kendall']:.3f}, MAPE {check['mape_pct']:.1f} %")  # fmt: skip
    return text


@app.command()
@user_errors
def add(
    profile_file: Annotated[
        Path | None, typer.Argument(metavar="[PROFILE.json]", help="A profile written by `modnas device measure`.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Device name (with --latencies).")] = None,
    latencies: Annotated[
        Path | None, typer.Option("--latencies", help="CSV with columns arch_str,latency_ms.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Batch size the CSV latencies were measured at.")
    ] = None,
    force: ForceOpt = False,
    space: Annotated[
        str, typer.Option("--space", metavar="NAME", help="Search space of the CSV's architectures (with --latencies).")
    ] = DEFAULT_SPACE,
) -> None:
    """Validate a device profile (JSON, or a CSV of latencies with --name) and store it."""
    from modnas.hardware.profiles import load_profile, profile_from_csv

    if profile_file is not None:
        if name is not None or latencies is not None or batch_size is not None:
            raise ModnasError("give either PROFILE.json, or --name with --latencies FILE.csv, not both")
        profile = load_profile(profile_file)
    elif name is not None and latencies is not None:
        fields = {} if batch_size is None else {"batch_size": batch_size}
        profile = profile_from_csv(name, latencies, space=space, **fields)
    else:
        raise ModnasError("give PROFILE.json, or --name NAME with --latencies FILE.csv")
    path = _store_and_sync(profile, force)
    console.print(f"stored device {profile.name!r} in {path}", highlight=False)
    console.print(f"embedding: {_embedding_text(profile.embedding)}", highlight=False)
    dim = len(profile.embedding)
    if profile.embedding_fit is not None:
        fit = profile.embedding_fit
        console.print(
            f"embedding fitted from {fit.measurements} measured architectures (not all {dim} reference "
            f"ones; RMS error of the fit {fit.rmse_ms:.3g} ms); all {fit.measurements} available for few-shot "
            "adaptation",
            highlight=False,
        )
        return
    n_extra = len(profile.latencies_ms) - dim
    console.print(
        f"{n_extra} architecture{'s' if n_extra != 1 else ''} beyond the {dim} reference ones "
        "available for few-shot adaptation",
        highlight=False,
    )


@app.command("list")
@user_errors
def list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The stored custom devices: embedding and number of measured architectures."""
    from modnas.hardware.profiles import ProfileStore, profile_description

    store = ProfileStore()
    profiles = store.all()
    if as_json:
        print_json(
            [
                {
                    "name": p.name,
                    "space": p.space,
                    "path": str(store.path(p.name)),
                    "description": profile_description(p),
                    "source": p.source,
                    "batch_size": p.batch_size,
                    "created": p.created,
                    "n_measurements": len(p.latencies_ms),
                    "n_extra": len(p.extra_latencies),
                    "embedding_fitted": p.embedding_fit is not None,
                    "embedding": p.embedding,
                }
                for p in profiles
            ]
        )
        return
    if not profiles:
        console.print(f"no stored devices in {store.root}", highlight=False)
        return
    table = Table(title=f"stored devices ({store.root})")
    for col in ("name", "space", "description", "batch", "measured", "embedding (reference archs)"):
        table.add_column(col)
    for p in profiles:
        table.add_row(
            p.name,
            p.space,
            profile_description(p),
            "?" if p.batch_size is None else str(p.batch_size),
            str(len(p.latencies_ms)),
            _embedding_text(p.embedding) + (" (fitted)" if p.embedding_fit is not None else ""),
        )
    console.print(table)


@app.command()
@user_errors
def remove(name: Annotated[str, typer.Argument(help="Stored device to delete.")]) -> None:
    """Delete a stored custom device."""
    from modnas.hardware.profiles import ProfileStore, sync_stored_device

    store = ProfileStore()
    try:
        space = store.load(name).space
    except ModnasError:  # missing or broken: nothing of it is registered beyond the default space
        space = DEFAULT_SPACE
    path = store.remove(name)
    sync_stored_device(store, name, space)
    console.print(f"removed device {name!r} ({path})", highlight=False)
