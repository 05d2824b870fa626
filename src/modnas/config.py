"""Search configuration: one validated pydantic model, read from YAML and overridden from the command line.

``load_config(path, overrides)`` reads an optional YAML file, applies overrides (flat keys such as ``epochs`` or
dotted keys such as ``error_predictor.steps``; ``None`` values mean "not given" and are skipped) and validates the
result. Unknown keys and bad values raise :class:`~modnas.errors.ModnasError` with one line naming the problem.

Settings that no default uses and that exist to reproduce the ablations of ``docs/experiments.md`` live in the
``experimental`` section (:class:`ExperimentalConfig`). Files written before it existed set them at their old
places (``query_proposals``, ``fill_with_neighbours``, ``lr_schedule`` at the top level, ``error_predictor.
pessimism``); they still load, moved into the section, with a logged deprecation warning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from modnas.errors import ModnasError, validation_error_line
from modnas.io import read_yaml_mapping

logger = logging.getLogger(__name__)

_STRICT = ConfigDict(extra="forbid", validate_assignment=True)


class ErrorPredictorConfig(BaseModel):
    """The differentiable error predictor of benchmark mode: an ensemble of small networks (NB201: a GCN, a flat
    one-hot MLP and a path-encoding MLP) or a Gaussian process."""

    model_config = _STRICT

    kind: Literal["mlp", "gp"] = Field(
        "mlp",
        description="mlp: an ensemble of small networks (NB201: GCN, flat and path-encoding MLPs); gp: a Gaussian "
        "process on the space's gated features (ARD squared-exponential plus linear kernel, hyperparameters by "
        "marginal likelihood), which ranks far better from 200 queries on GPT-S and OFA (docs/benchmarks.md)",
    )
    gcn_hidden: StrictInt = Field(32, ge=1, description="width of the graph convolutions")
    gcn_layers: StrictInt = Field(3, ge=1, description="number of graph convolutions")
    flat_hidden: StrictInt = Field(64, ge=0, description="width of the MLP on the flat one-hot (0 disables it)")
    path_hidden: StrictInt = Field(
        64, ge=0, description="width of the two-layer MLP on the path encoding and the flat one-hot (0 disables it)"
    )
    head_hidden: StrictInt = Field(64, ge=1, description="width of the output MLP")
    ensemble: StrictInt = Field(3, ge=1, description="independently initialised members whose mean is the prediction")
    steps: StrictInt = Field(300, ge=1, description="full-batch Adam steps per (re)fit")
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    degenerate_error: float = Field(
        90.0, gt=0, le=100, description="errors (%) at or above this are degenerate cells: clipped and down-weighted"
    )
    degenerate_weight: float = Field(0.1, ge=0, le=1, description="loss weight of a degenerate architecture")


class ExperimentalConfig(BaseModel):
    """Settings that no default uses, kept to reproduce the ablations of ``docs/experiments.md``.

    Each default is what a default search does; the other values are the experiments' variants.
    """

    model_config = _STRICT

    query_proposals: Literal["hypernet", "hypernet+argmin"] = Field(
        "hypernet+argmin",
        description="what a query round queries: the hypernetwork's argmax architectures, or those plus the argmin "
        "of the scalarised predicted objectives over all architectures (per training device and evaluation ray)",
    )
    fill_with_neighbours: bool = Field(
        True, description="top a round up with one-edge mutations of proposals when too few proposals are new"
    )
    pessimism: float = Field(
        0.0, ge=0, description="error-predictor ensemble stds added to the predicted error once the budget is spent"
    )
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="hypernetwork learning rate: cosine decay to 5 % of lr over the run, or constant"
    )


#: Where the experimental settings were before the ``experimental`` section: old path -> name in the section.
LEGACY_EXPERIMENTAL_KEYS: dict[tuple[str, ...], str] = {
    ("query_proposals",): "query_proposals",
    ("fill_with_neighbours",): "fill_with_neighbours",
    ("lr_schedule",): "lr_schedule",
    ("error_predictor", "pessimism"): "pessimism",
}


def upgrade_config_data(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of config data with the settings of :data:`LEGACY_EXPERIMENTAL_KEYS` moved from their old places
    into ``experimental``, and the dotted old keys that were moved.

    A setting given at both places with different values is a one-line :class:`ModnasError`; anything else is
    left for validation to judge.
    """
    out = dict(data)
    moved: list[str] = []
    for path, name in LEGACY_EXPERIMENTAL_KEYS.items():
        parent = out if len(path) == 1 else out.get(path[0])
        if not isinstance(parent, Mapping) or path[-1] not in parent:
            continue
        section = out.get("experimental", {})
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            continue  # validation reports the bad section
        old_key = ".".join(path)
        parent = dict(parent)
        value = parent.pop(path[-1])
        if name in section and section[name] != value:
            raise ModnasError(
                f"config sets {old_key} ({value!r}) and experimental.{name} ({section[name]!r}); "
                f"give only experimental.{name}"
            )
        if len(path) > 1:
            out[path[0]] = parent
        else:
            out = parent
        out["experimental"] = {**section, name: value}
        moved.append(old_key)
    return out, moved


#: Dataset presets of one-shot mode: what a ``None`` field of :class:`OneShotConfig` resolves to. CIFAR follows
#: the MODNAS paper's NB201 setting (batch 256, SGD lr 0.025 x 13, wd 0.0027, C=16, N=5); digits is sized so that the
#: default search finishes in minutes on 2 CPU cores; Fashion-MNIST keeps the paper's network at batch 128.
ONESHOT_PRESETS: dict[str, dict[str, Any]] = {
    "digits": {
        "batch_size": 64, "lr": 0.1, "weight_decay": 3e-4, "C": 8, "N": 2, "warmup_epochs": 5,
        "preferences_per_device": 1,
    },
    "fashion-mnist": {
        "batch_size": 128, "lr": 0.325, "weight_decay": 0.0027, "C": 16, "N": 5, "warmup_epochs": 0,
        "preferences_per_device": 1,
    },
    "cifar10": {
        "batch_size": 256, "lr": 0.325, "weight_decay": 0.0027, "C": 16, "N": 5, "warmup_epochs": 0,
        "preferences_per_device": 1,
    },
    "cifar100": {
        "batch_size": 256, "lr": 0.325, "weight_decay": 0.0027, "C": 16, "N": 5, "warmup_epochs": 0,
        "preferences_per_device": 1,
    },
    # text corpora (language-model spaces, gpt-tiny): batches of 128-token windows
    "bible-kjv": {
        "batch_size": 32, "lr": 0.05, "weight_decay": 0.0, "C": 16, "N": 5, "warmup_epochs": 1,
        "preferences_per_device": 1,
    },
    "fortunes": {
        "batch_size": 32, "lr": 0.05, "weight_decay": 0.0, "C": 16, "N": 5, "warmup_epochs": 1,
        "preferences_per_device": 1,
    },
}


class OneShotConfig(BaseModel):
    """One-shot mode: the space's supernet trained on real images jointly with the hypernetwork.

    Fields left at ``None`` take the dataset's preset (:data:`ONESHOT_PRESETS`); see :meth:`resolved`.
    """

    model_config = _STRICT

    dataset: Literal["digits", "fashion-mnist", "cifar10", "cifar100", "bible-kjv", "fortunes"] = Field(
        "digits",
        description="digits: bundled with scikit-learn; fashion-mnist, bible-kjv, fortunes: Debian packages or data_dir",
    )
    data_dir: str | None = Field(None, description="folder holding the dataset files (Fashion-MNIST IDX, CIFAR)")
    download: bool = Field(False, description="CIFAR only: let torchvision download into data_dir")
    train_limit: StrictInt | None = Field(None, ge=4, description="use only the first n training images (None: all)")
    train_portion: float = Field(0.5, gt=0, lt=1, description="share of the training images for the weights")
    batch_size: StrictInt | None = Field(None, ge=2, description="images per batch, both phases")
    lr: float | None = Field(None, gt=0, description="supernet SGD learning rate (paper: 0.025 x 13)")
    momentum: float = Field(0.9, ge=0, lt=1)
    score_windows: StrictInt = Field(
        64, ge=1, description="text, in a space without quality ground truth: validation windows rating each epoch"
    )
    optimizer: Literal["sgd", "adamw"] = Field(
        "sgd", description="supernet weight optimiser: sgd (momentum; the paper) or adamw (transformers)"
    )
    weight_decay: float | None = Field(None, ge=0, description="supernet SGD weight decay (paper: 0.0027)")
    eta_min: float = Field(0.001, ge=0, description="end of the cosine learning-rate schedule")
    grad_clip: float = Field(5.0, gt=0, description="global gradient-norm clip of the weight update")
    C: StrictInt | None = Field(None, ge=1, description="NB201: channels of the first stage (paper: 16)")
    N: StrictInt | None = Field(None, ge=1, description="NB201: search cells per stage (paper: 5)")
    entangle: bool = Field(True, description="NB201: nor_conv_1x1 uses the centre tap of nor_conv_3x3's kernel")
    supernet: dict[str, Any] = Field(
        default_factory=dict,
        description="settings of the space's supernet besides C, N and entangle (OFA: width_mult, image_size)",
    )
    augment: bool | None = Field(None, description="random crop + flip of weight batches (None: per dataset)")
    preferences_per_device: StrictInt | None = Field(
        None, ge=1, description="preferences per device and step, sharing the hypernetwork batch (paper: 1)"
    )
    warmup_epochs: StrictInt | None = Field(
        None, ge=0, description="first epochs train only the supernet, on paths of the untrained (uniform) hypernetwork"
    )
    ce_window: StrictInt = Field(
        20, ge=1, description="steps whose cross-entropies set the running min-max range of the error term"
    )
    ce_quantile: float = Field(
        0.75, gt=0, le=1, description="upper end of the error normalisation: this quantile of the window (1: max)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available")
    amp: bool = Field(True, description="bf16 autocast on CUDA (ignored on the CPU)")
    channels_last: bool = Field(True, description="channels-last memory format on CUDA (ignored on the CPU)")
    weight_split: Literal["auto", "batch", "devices"] = Field(
        "auto",
        description="several processes (torchrun): batch = each rank a slice of the weight batch (global-batch "
        "normalisation), devices = each rank its training devices' samples on the whole batch; auto = batch on "
        "CUDA or with more ranks than training devices, else devices (gloo's per-collective latency on the CPU)",
    )

    def resolved(self) -> dict[str, Any]:
        """Every setting with the dataset's preset filled in for the ``None`` fields."""
        data = self.model_dump()
        for key, value in ONESHOT_PRESETS[self.dataset].items():
            if data[key] is None:
                data[key] = value
        return data


class SearchConfig(BaseModel):
    """Everything one MODNAS search needs; the resolved copy is stored in the run directory."""

    model_config = _STRICT

    mode: Literal["benchmark", "oneshot"] = Field(
        "benchmark",
        description="benchmark: error predictor fitted on table queries; oneshot: supernet trained on real images",
    )
    space: str = Field(
        "nb201", description="search space (problem): a built-in name (nb201, ofa), or package.module:attr"
    )
    seed: StrictInt = 0
    epochs: StrictInt = Field(30, ge=1)
    steps_per_epoch: StrictInt = Field(100, ge=1)
    objectives: tuple[str, ...] = Field(
        ("error", "latency"), description="error,latency or error,latency,energy (energy: eyeriss and fpga only)"
    )
    train_devices: tuple[str, ...] | None = Field(
        None,
        description="devices the hypernetwork trains on (default: the 13 protocol training devices; with energy: "
        "eyeriss and fpga)",
    )
    eval_devices: tuple[str, ...] | None = Field(
        None, description="devices scored every epoch (default: the 19 protocol devices; with energy: eyeriss, fpga)"
    )

    hypernet: Literal["meta", "mlp"] = "meta"
    hypernet_hidden: StrictInt = Field(128, ge=1, description="MLP hypernetwork width (mlp only)")
    pretrain_steps: StrictInt = Field(200, ge=1, description="steps of pretraining towards uniform op weights")
    sampler: Literal["reinmax", "gdas"] = "reinmax"
    tau: float = Field(1.0, gt=0, description="ReinMax temperature; GDAS anneals from tau_max down to tau")
    tau_max: float = Field(10.0, gt=0, description="GDAS start temperature")
    aggregation: Literal["mgda", "mean", "sum"] = "mgda"
    scalarisation: Literal["linear", "chebyshev"] = Field(
        "linear",
        description="how a preference weighs the normalised objectives in the hypernetwork's loss and in the "
        "query proposals: linear r.f (MODNAS), or augmented Chebyshev max_i r_i f_i + 0.05 r.f, which spreads "
        "the preferences along fronts that are close to straight",
    )
    preferences_per_device: StrictInt = Field(16, ge=1, description="Dirichlet preferences per device and step")
    dirichlet_concentration: float = Field(1.0, gt=0)
    lr: float = Field(3.9e-3, gt=0, description="hypernetwork AdamW learning rate (MODNAS: 3e-4 x 13)")
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(1e-3, ge=0, description="decoupled (AdamW) weight decay (the official code couples it to Adam)")

    query_budget: StrictInt = Field(200, ge=1, description="K: distinct architectures whose true accuracy may be read")
    initial_queries: StrictInt = Field(100, ge=1, description="random architectures queried before the search starts")
    query_start_epoch: StrictInt = Field(1, ge=1, description="first epoch after which proposals are queried")
    query_every: StrictInt = Field(1, ge=1, description="epochs between adaptive query rounds")
    queries_per_round: StrictInt = Field(20, ge=1, description="most architectures queried in one adaptive round")
    error_predictor: ErrorPredictorConfig = Field(default_factory=ErrorPredictorConfig)
    front: Literal["hypernet", "hypernet+measured"] = Field(
        "hypernet+measured",
        description="what a front reports per preference: the hypernetwork's argmax architecture, or (benchmark "
        "mode) a queried architecture where one dominates it (true error; latency per front_latency; energy)",
    )
    front_latency: Literal["measured", "predicted"] = Field(
        "measured",
        description="latency by which hypernet+measured compares architectures: measured where the device has a "
        "measurement (its reference architectures, its profile's extra latencies, and the whole table of the 13 "
        "training devices the hardware predictor was fitted on; never a test device's table), else the "
        "MetaPredictor's; or the MetaPredictor's everywhere",
    )

    hardware_predictor: str | None = Field(
        None,
        description="a `modnas predictor train` checkpoint of the search's space, used in place of the space's own "
        "latency predictor (by the search and by front, export and evaluate on its run); device embeddings stay "
        "as the space defines them",
    )
    refine_rounds: StrictInt = Field(
        0, ge=0,
        description="benchmark mode: rounds of steepest descent that move each preference's pick to its best "
        "one-move neighbour under the search's own objectives (error predictor, true error where queried; the "
        "hardware predictor's latency), scalarised as the loss is, until no pick moves; no queries. Applied to the "
        "final epoch's fronts and by front/export (earlier epochs report the hypernetwork's picks). 0: the "
        "hypernetwork's picks (MODNAS)",
    )
    eval_rays: StrictInt = Field(
        24, ge=1, description="evaluation preferences per device (circle rays; a simplex grid of about as many for 3)"
    )
    oneshot: OneShotConfig = Field(default_factory=OneShotConfig)
    experimental: ExperimentalConfig = Field(default_factory=ExperimentalConfig)

    @model_validator(mode="before")
    @classmethod
    def _old_places(cls, data: Any, info: ValidationInfo) -> Any:
        """Settings of the ``experimental`` section given at their old places are moved there (see
        :func:`upgrade_config_data`); a warning says so unless the context asks for quiet (a run directory's
        own config.yaml, which its user cannot be asked to edit)."""
        if not isinstance(data, Mapping):
            return data
        upgraded, moved = upgrade_config_data(data)
        if moved and not (info.context or {}).get("quiet_upgrade"):
            logger.warning(
                "deprecated config key%s %s: set %s instead (read from the old place this time)",
                "s" if len(moved) > 1 else "", ", ".join(moved),
                ", ".join(f"experimental.{LEGACY_EXPERIMENTAL_KEYS[tuple(k.split('.'))]}" for k in moved),
            )
        return upgraded

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("objectives")
    @classmethod
    def _known_objectives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # the names are checked against the space's ground truth when the search starts
        if len(value) < 2 or value[0] != "error" or value[1] != "latency" or len(set(value)) != len(value):
            raise ValueError("objectives must be error,latency followed by distinct further hardware objectives")
        return tuple(value)

    @field_validator("hardware_predictor")
    @classmethod
    def _absolute_predictor_path(cls, value: str | None) -> str | None:
        # absolute, so that `modnas front` on the run finds the checkpoint from any working directory
        if value is None:
            return None
        if not str(value).strip():
            raise ValueError("hardware_predictor must be a checkpoint path")
        return str(Path(value).expanduser().resolve())

    @field_validator("train_devices", "eval_devices", mode="before")
    @classmethod
    def _device_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if value is not None and len(value) == 0:
            raise ValueError("a device list must name at least one device")
        return value

    def training_devices(self) -> tuple[str, ...]:
        """``train_devices``, or the space's default set for the objectives."""
        return tuple(self.train_devices or self._default_devices()[0])

    def evaluation_devices(self) -> tuple[str, ...]:
        """``eval_devices``, or the space's default set for the objectives."""
        return tuple(self.eval_devices or self._default_devices()[1])

    def _default_devices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        from modnas.problem import get_problem

        problem = get_problem(self.space)
        if problem.default_devices is not None:
            return problem.default_devices(self.objectives)
        return problem.devices.names("train"), problem.devices.names("protocol")

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError("betas must lie in [0, 1)")
        return value

    @model_validator(mode="after")
    def _budget(self) -> SearchConfig:
        if len(self.objectives) > 2 and self.hypernet == "meta":
            raise ValueError(
                "the meta hypernetwork bins the first preference entry only, so it cannot tell latency from energy; "
                "use hypernet: mlp with three objectives"
            )
        if self.initial_queries > self.query_budget:
            raise ValueError(
                f"initial_queries ({self.initial_queries}) exceeds query_budget ({self.query_budget})"
            )
        return self

    def to_yaml(self) -> str:
        """The resolved configuration as YAML (loadable with :func:`load_config`)."""
        data = self.model_dump(mode="json")
        return yaml.safe_dump(data, sort_keys=False)


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ModnasError(f"config key {part!r} is not a section, cannot set {key!r}")
        node = child
    node[parts[-1]] = value


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``["error_predictor.steps=300", "lr=2e-3"]`` -> overrides for :func:`load_config`; values are read as YAML
    (``300`` an int, ``true`` a bool, ``[fpga, eyeriss]`` a list). A key given twice is refused."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ModnasError(f"--set takes KEY=VALUE (e.g. error_predictor.steps=300), got {item!r}")
        if key in overrides:
            raise ModnasError(f"--set gives {key!r} twice")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise ModnasError(f"--set {key}: {text!r} is not a valid YAML value") from None
        overrides[key] = value
    return overrides


def make_config(data: Mapping[str, Any], *, quiet_upgrade: bool = False) -> SearchConfig:
    """Validate a plain mapping into a :class:`SearchConfig` (one-line :class:`ModnasError` on failure).

    ``quiet_upgrade``: settings at their pre-``experimental`` places are moved without a deprecation warning.
    """
    try:
        return SearchConfig.model_validate(dict(data), context={"quiet_upgrade": quiet_upgrade})
    except ValidationError as err:
        raise ModnasError(validation_error_line(err, "config")) from None


def load_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *, quiet_upgrade: bool = False
) -> SearchConfig:
    """Defaults, then the space's own defaults (:attr:`modnas.problem.Problem.search_defaults` in benchmark mode,
    :attr:`~modnas.problem.Problem.oneshot_defaults` in one-shot mode),
    then the YAML file at ``path`` (if given), then ``overrides`` (``None`` values are skipped);
    ``quiet_upgrade``: as :func:`make_config`."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, "config file")
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, str(key), value)
    mode = data.get("mode", "benchmark")
    if mode in ("benchmark", "oneshot"):
        from modnas.problem import DEFAULT_SPACE, get_problem

        problem = get_problem(str(data.get("space", DEFAULT_SPACE)))
        defaults = problem.search_defaults if mode == "benchmark" else problem.oneshot_defaults
        for key, value in defaults.items():
            if not _has_dotted(data, key):
                _set_dotted(data, key, value)
    return make_config(data, quiet_upgrade=quiet_upgrade)


def _has_dotted(data: Mapping[str, Any], key: str) -> bool:
    """Whether a dotted key (``error_predictor.steps``) is set in a nested mapping."""
    head, _, rest = key.partition(".")
    if head not in data:
        return False
    return not rest or (isinstance(data[head], Mapping) and _has_dotted(data[head], rest))
