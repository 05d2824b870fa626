"""``modnas train``: train a found architecture from scratch on a real dataset and test it.

Register it in :mod:`modnas.cli` with ``app.command("train")(train_command)``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from modnas.commands.common import console, err_console, log_level, plain_output, print_json, user_errors

T = TypeVar("T")


@user_errors
def train_command(
    arch: Annotated[
        str, typer.Argument(metavar="ARCH", help="ARCH.json from `modnas export`, or an architecture of --space as "
                            "its string (NB201: also its index).")
    ],
    space: Annotated[
        str, typer.Option(help="Search space of an ARCH given as a string (an ARCH.json names its own).")
    ] = "nb201",
    data: Annotated[str, typer.Option(help="Dataset: digits, fashion-mnist, cifar10, cifar100, or a text corpus "
                                      "(bible-kjv, fortunes) for a GPT space.")] = "digits",
    epochs: Annotated[int | None, typer.Option(help="Epochs (default per dataset: digits 30, fashion-mnist 3).")] = None,
    out: Annotated[Path | None, typer.Option(help="New output directory (default: trained/<timestamp>).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the dataset files (Fashion-MNIST, CIFAR).")] = None,
    download: Annotated[bool, typer.Option("--download", help="CIFAR: let torchvision download into --data-dir.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default per dataset).")] = None,
    lr: Annotated[float | None, typer.Option(help="SGD learning rate, cosine-decayed to 0 (default per dataset).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay (default: 5e-4; text: 0.01).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd (Nesterov) or adamw (default: sgd; text: adamw).")] = None,
    channels: Annotated[int | None, typer.Option("--channels", help="NB201: channels of the first stage (default: 16).")] = None,
    cells: Annotated[int | None, typer.Option("--cells-per-stage", help="NB201: cells per stage (default: 5).")] = None,
    width_mult: Annotated[
        float | None, typer.Option("--width-mult", help="OFA: width multiplier of the MobileNetV3 (default: an "
                                   "ARCH.json's, else 1.2).")
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", min=1, help="Resize the images to N pixels (default: the dataset's; "
                                 "an OFA one-shot pick: the pixels its supernet fed it).")
    ] = None,
    accelerator: Annotated[
        str | None, typer.Option("--accelerator", help="Where to train: auto (default: CUDA when available), cpu or cuda.")
    ] = None,
    old_channels: Annotated[int | None, typer.Option("--C", hidden=True)] = None,
    old_cells: Annotated[int | None, typer.Option("--N", hidden=True)] = None,
    old_device: Annotated[str | None, typer.Option("--device", hidden=True)] = None,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Train without crop/flip augmentation.")] = False,
    train_limit: Annotated[int | None, typer.Option(help="Use only the first N training images.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print result.json instead of a summary line.")] = False,
) -> None:
    """Train the standalone network of an architecture, test it, and write checkpoint.pt and result.json."""
    from modnas.train import TrainSettings, load_architecture, train_architecture

    # the old spellings still work for one version (--device meant cpu/cuda here, a hardware device elsewhere)
    channels = _renamed("--C", old_channels, "--channels", channels, 16)
    cells = _renamed("--N", old_cells, "--cells-per-stage", cells, 5)
    accelerator = _renamed("--device", old_device, "--accelerator", accelerator, "auto")
    arch_str, meta = load_architecture(arch, space)
    settings = TrainSettings(
        dataset=data, data_dir=None if data_dir is None else str(data_dir), download=download, epochs=epochs,
        batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer, C=channels, N=cells, seed=seed, device=accelerator,
        augment=not no_augment, train_limit=train_limit, width_mult=float(width_mult if width_mult is not None else meta.get("width_mult", 1.2)),
        image_size=image_size,
    ).resolved()
    out_dir = out or Path("trained") / time.strftime("%Y%m%d-%H%M%S")
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err_console, transient=True,
    )
    test_acc = ""
    # without a terminal (CI, nohup, a pipe): one plain line per epoch on stderr instead of the bar
    with bar, log_level("modnas.train", logging.INFO if plain_output() else logging.WARNING):
        task = bar.add_task(f"training on {settings.dataset}", total=None, info="")

        def progress(done: int, total: int, info: dict[str, float]) -> None:
            nonlocal test_acc
            if "test_acc" in info:
                test_acc = f" test {info['test_acc']:.2f} %"
            shown = f"loss {info['loss']:.3f} train {info['train_acc']:.1f} %" if "loss" in info else ""
            bar.update(task, completed=done, total=total, info=shown + test_acc)

        result = train_architecture(
            arch_str, settings, out_dir, progress=progress, meta=meta, space=str(meta.get("space", space))
        )
    if as_json:
        print_json({**result, "out": str(out_dir)})
        return
    quality = (f"test perplexity [bold]{result['test_perplexity']:.3f}[/]" if "test_perplexity" in result
               else f"test accuracy [bold]{result['test_accuracy']:.2f} %[/]")
    console.print(
        f"{arch_str}\n{result['dataset']}: {quality} after "
        f"{result['epochs']} epochs ({result['seconds']:.0f} s, {result['params']:,} parameters, {result['device']}); "
        f"wrote {out_dir}/result.json",
        highlight=False, soft_wrap=True,
    )


def _renamed(old: str, old_value: T | None, new: str, value: T | None, default: T) -> T:
    """The value of an option given under its new name or (with a deprecation line) its old one."""
    from modnas.errors import ModnasError

    if old_value is None:
        return default if value is None else value
    if value is not None:
        raise ModnasError(f"{old} is the old name of {new}; give only {new}")
    err_console.print(
        f"warning: {old} is deprecated and will be removed in the next version; use {new}",
        highlight=False, soft_wrap=True,
    )
    return old_value
