"""Exporting a chosen architecture's network for deployment: ONNX and ``torch.export`` (``.pt2``) files.

The network is the space's standalone network (:meth:`~modnas.spaces.base.SearchSpace.build_network`; NB201: the
cell network; OFA: the ImageNet subnet, its input at the architecture's resolution), in eval mode, with the
weights of a ``modnas train`` checkpoint when one is given (its width, depth, classes and input channels then
come from the checkpoint) and freshly initialised ones otherwise. Both files take a batch of any size
(``input``: ``(batch, channels, size, size)`` float32) and return ``logits`` ``(batch, classes)``.

ONNX uses PyTorch's TorchScript-based exporter by default: it needs only the ``onnx`` package (``pip install
'modnas[export]'``), where the ``torch.export``-based one (``exporter="dynamo"``) also needs ``onnxscript``.
Each file is written under a temporary name and renamed, so a failed export leaves no partial file.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from modnas.errors import ModnasError
from modnas.io import atomic_replace

if TYPE_CHECKING:
    from modnas.problem import Problem

FORMATS: tuple[str, ...] = ("py", "onnx", "pt2")
EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
#: image side of the datasets ``modnas train`` knows (the network pools globally, so any side >= 4 works)
IMAGE_SIZES = {"digits": 8, "fashion-mnist": 28, "cifar10": 32, "cifar100": 32}


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild the exported network and its input."""

    arch_str: str
    #: the search space the architecture belongs to
    space: str = "nb201"
    C: int = 16
    N: int = 5
    #: OFA: the width multiplier of the MobileNetV3 (1.2: the paper's supernet)
    width_mult: float = 1.2
    num_classes: int = 10
    in_channels: int = 3
    image_size: int = 32

    def input_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        return (batch, self.in_channels, self.image_size, self.image_size)

    def network_kwargs(self) -> dict[str, int]:
        """``build_network``'s settings: the space's own (``SearchSpace.network_options``; NB201: cell width ``C``
        and depth ``N``), classes and input channels."""
        from modnas.problem import get_problem

        options = get_problem(self.space).space.network_options
        return {**{name: getattr(self, name) for name in options}, "num_classes": self.num_classes,
                "in_channels": self.in_channels}

    def record(self) -> dict[str, Any]:
        """What files say of the network (a `modnas train` checkpoint, an export's JSON), and what
        :func:`load_weights` reads back: space, build settings, input size."""
        return {"space": self.space, **self.network_kwargs(), "image_size": self.image_size}


def default_spec(arch_str: str, space: str = "nb201") -> NetworkSpec:
    """The network exported without a checkpoint, as the space describes it (``SearchSpace.export_defaults``;
    NB201: the CIFAR-10 cell network; OFA: the ImageNet subnet at the architecture's own resolution)."""
    from modnas.problem import get_problem

    return NetworkSpec(arch_str, space=space, **get_problem(space).space.export_defaults(arch_str))


def load_weights(path: str | Path, arch_str: str, space: str = "nb201") -> tuple[NetworkSpec, dict[str, torch.Tensor]]:
    """The network spec and state dict of a ``modnas train`` checkpoint, which must hold ``arch_str``'s weights."""
    from modnas.problem import get_problem

    canonical = get_problem(space).space.canonical_key

    file = Path(path)
    if not file.is_file():
        raise ModnasError(f"weights file {str(file)!r} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors of a damaged or foreign file come in many types
        raise ModnasError(f"weights file {str(file)!r} is not a readable checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict) or "arch_str" not in state:
        raise ModnasError(f"{str(file)!r} is not a `modnas train` checkpoint (it lacks 'model' and 'arch_str')")
    if canonical(state["arch_str"]) != canonical(arch_str):
        raise ModnasError(
            f"{str(file)!r} holds the weights of {state['arch_str']}, not of the exported architecture {arch_str}"
        )
    model = state["model"]
    network = state.get("network")
    if isinstance(network, dict):  # NetworkSpec.record(), which `modnas train` writes for any space's network
        if network.get("space", space) != space:
            raise ModnasError(f"{str(file)!r} holds a {network.get('space')} network, not a {space} one")
        fields = {k: v for k, v in network.items() if k in NetworkSpec.__dataclass_fields__ and k != "space"}
        return NetworkSpec(arch_str=arch_str, space=space, **fields), model
    # older checkpoints hold NB201 networks: their shape is read from the weights
    try:
        stem, classifier = model["stem.0.weight"], model["classifier.weight"]
    except KeyError as exc:
        raise ModnasError(f"{str(file)!r} holds no {space} network weights (no {exc.args[0]!r})") from None
    cells = {key.split(".")[1] for key in model if key.startswith("cells.")}
    settings = state.get("settings") if isinstance(state.get("settings"), dict) else {}
    n = int(settings.get("N") or (len(cells) - 2) // 3)
    dataset = str(settings.get("dataset", ""))
    spec = NetworkSpec(
        arch_str=arch_str, space=space, C=int(stem.shape[0]), N=n, num_classes=int(classifier.shape[0]),
        in_channels=int(stem.shape[1]), image_size=IMAGE_SIZES.get(dataset, 32),
    )
    return spec, model


def build_for_export(spec: NetworkSpec, state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The network of ``spec`` in eval mode, with ``state_dict`` loaded strictly when given."""
    from modnas.problem import get_problem

    build_network = get_problem(spec.space).space.build_network
    model = build_network(spec.arch_str, **spec.network_kwargs())
    if state_dict is not None:
        try:
            model.load_state_dict(state_dict)
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
            raise ModnasError(f"the weights do not fit the network of {spec.arch_str} ({first})") from None
    return model.eval()


def _temporary(target: Path) -> Path:
    """A fresh temporary path beside ``target`` with the same suffix (torch.export insists on ``.pt2``)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=target.suffix)
    os.close(fd)
    return Path(tmp)


def _write_atomically(target: Path, write: Any) -> None:
    tmp = _temporary(target)
    try:
        write(tmp)
        atomic_replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_format_dependencies(formats: Sequence[str], exporter: str = "torchscript") -> None:
    """One-line errors for unknown formats or exporters and missing optional packages, before any work."""
    for fmt in formats:
        if fmt not in FORMATS:
            raise ModnasError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if exporter not in EXPORTERS:
        raise ModnasError(f"unknown ONNX exporter {exporter!r}; choose {' or '.join(EXPORTERS)}")
    if "onnx" in formats:
        needed = ["onnx"] + (["onnxscript"] if exporter == "dynamo" else [])
        missing = [name for name in needed if importlib.util.find_spec(name) is None]
        if missing:
            extra = "pip install 'modnas[export]'" + (" onnxscript" if "onnxscript" in missing else "")
            raise ModnasError(f"--format onnx needs the {' and '.join(missing)} package: {extra}")


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: str | Path, exporter: str = "torchscript", opset: int | None = None
) -> Path:
    """Write ``model`` as an ONNX file with a dynamic batch axis; the model is checked with ``onnx.checker``.

    ``opset`` defaults to 17 (TorchScript exporter; widely supported by runtimes) or 18 (the dynamo exporter's
    lowest).
    """
    check_format_dependencies(["onnx"], exporter)
    target = Path(path)
    opset = opset or (18 if exporter == "dynamo" else 17)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # the TorchScript exporter warns that it is legacy; it is chosen because it needs only `onnx`
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if exporter == "dynamo":
                batch = torch.export.Dim("batch", min=1)
                torch.onnx.export(
                    model, (example,), str(tmp), dynamo=True, input_names=["input"], output_names=["logits"],
                    dynamic_shapes=({0: batch},), opset_version=opset, verbose=False, external_data=False,
                )
            else:
                torch.onnx.export(
                    model, (example,), str(tmp), dynamo=False, input_names=["input"], output_names=["logits"],
                    dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                )
        import onnx

        onnx.checker.check_model(str(tmp))

    try:
        _write_atomically(target, write)
    except ModnasError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModnasError(f"ONNX export ({exporter}) failed: {first}") from None
    return target


def export_pt2(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Write ``model`` as a ``torch.export`` program (``torch.export.load(path).module()`` runs it)."""
    target = Path(path)
    batch = torch.export.Dim("batch", min=1)

    def write(tmp: Path) -> None:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(tmp))

    try:
        _write_atomically(target, write)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModnasError(f"torch.export failed: {first}") from None
    return target


def export_choice(
    choice: dict[str, Any],
    out: str | Path,
    formats: Sequence[str] = ("py",),
    weights: str | Path | None = None,
    image_size: int | None = None,
    force: bool = False,
    exporter: str = "torchscript",
    inherited_from: str | Path | None = None,
    calibration_images: int = 2000,
) -> list[Path]:
    """Write ``<out>.json`` and one file per format (``.py``, ``.onnx``, ``.pt2``) for a chosen architecture.

    ``weights``: a ``modnas train`` checkpoint of the same architecture (ONNX and pt2 only); or ``inherited_from``:
    a one-shot run directory whose trained supernet hands the architecture its weights (see
    :func:`~modnas.search.inherited.inherited_network`; ``calibration_images`` for batch normalisation). Everything
    is checked -- formats, packages, existing files, the checkpoint -- before the first file is written.
    """
    from modnas.io import atomic_write_json, check_writable

    formats = list(dict.fromkeys(formats))  # repeated formats once, in the order given
    check_format_dependencies(formats, exporter)
    if weights is not None and inherited_from is not None:
        raise ModnasError("--weights and --inherited are two sources of weights; give one of them")
    if (weights is not None or inherited_from is not None) and not {"onnx", "pt2"} & set(formats):
        given = "--weights" if weights is not None else "--inherited"
        raise ModnasError(f"{given} goes into --format onnx or pt2 (the .py module defines the network only)")
    if image_size is not None and image_size < 4:
        raise ModnasError(f"--input-size must be at least 4 (three stride-2 reductions), got {image_size}")
    base = Path(out)
    if base.suffix in (".json", *(f".{f}" for f in FORMATS)):
        base = base.with_suffix("")
    paths = {fmt: base.with_suffix(f".{fmt}") for fmt in ["json", *formats]}
    for path in paths.values():
        if path.exists() and not force:
            raise ModnasError(f"{path} already exists; pass --force to overwrite it")
    if not base.parent.is_dir():
        raise ModnasError(f"output folder {str(base.parent)!r} does not exist")
    check_writable(paths["json"], "export")  # before the networks are built and exported
    space = str(choice.get("space", "nb201"))
    spec, state_dict = default_spec(choice["arch_str"], space), None
    source = None if weights is None else str(weights)
    if weights is not None:
        spec, state_dict = load_weights(weights, choice["arch_str"], space)
    elif inherited_from is not None:
        from modnas.search.inherited import inherited_network

        spec, state_dict, source = inherited_network(inherited_from, choice["arch_str"], calibration_images)
    if image_size is not None:
        spec = NetworkSpec(**{**spec.__dict__, "image_size": image_size})
    record = dict(choice)
    network_formats = [f for f in formats if f in ("onnx", "pt2")]
    if network_formats:
        model = build_for_export(spec, state_dict)
        from modnas.problem import get_problem

        example, input_shape = get_problem(space).space.example_input(spec, 2, torch.Generator().manual_seed(0))
        for fmt in network_formats:
            if fmt == "onnx":
                export_onnx(model, example, paths["onnx"], exporter)
            else:
                export_pt2(model, example, paths["pt2"])
        record["network"] = {
            "arch_str": spec.arch_str, **spec.record(),
            "input_shape": input_shape,
            "weights": source,
            **({"onnx_exporter": exporter} if "onnx" in formats else {}),
        }
    if "py" in formats:
        export_architecture(record, base, force=True)  # writes the JSON and the module
    else:
        atomic_write_json(paths["json"], record)
    return list(paths.values())


def export_architecture(
    choice: dict[str, Any], out: str | Path, force: bool = False, problem: Problem | str | None = None
) -> tuple[Path, Path]:
    """Write ``<out>.json`` (the choice) and ``<out>.py`` (a standalone PyTorch definition of its space);
    refuse to overwrite."""
    from modnas.io import atomic_write_json, atomic_write_text, check_writable
    from modnas.problem import get_problem

    space = get_problem(problem if problem is not None else choice.get("space", "nb201")).space
    base = Path(out)
    if base.suffix in (".json", ".py"):
        base = base.with_suffix("")
    json_path, py_path = base.with_suffix(".json"), base.with_suffix(".py")
    for path in (json_path, py_path):
        if path.exists() and not force:
            raise ModnasError(f"{path} already exists; pass --force to overwrite it")
    check_writable(json_path, "export")
    source = space.export_source({**choice, "json_name": json_path.name})
    atomic_write_json(json_path, choice)
    atomic_write_text(py_path, source)
    return json_path, py_path


__all__ = [
    "EXPORTERS",
    "FORMATS",
    "NetworkSpec",
    "build_for_export",
    "check_format_dependencies",
    "default_spec",
    "export_architecture",
    "export_choice",
    "export_onnx",
    "export_pt2",
    "load_weights",
]
