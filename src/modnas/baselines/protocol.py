"""The benchmark protocol: which methods, devices, seeds and budget a ``modnas benchmark`` run compares.

A protocol is a YAML mapping validated by :class:`Protocol`; unknown keys, methods and devices are one-line
:class:`~modnas.errors.ModnasError` messages. Example (the full report, ``benchmarks/protocols/full.yaml``)::

    space: nb201             # the search space (default nb201)
    methods: [modnas, random, local, morea, nsga2, motpe, gp]
    devices: protocol        # the space's protocol (NB201: 19), train (13), test (6) devices, or a list
    seeds: [0, 1, 2]
    budget: 200              # K: MODNAS's total; each baseline's budget per device
    workers: 2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from modnas.errors import ModnasError, validation_error_line
from modnas.io import read_yaml_mapping
from modnas.problem import DEFAULT_SPACE, Problem, get_problem

#: MODNAS itself, next to the baselines of :data:`modnas.baselines.METHODS`.
MODNAS = "modnas"
#: The same MODNAS runs re-scored with the MetaPredictor's latency everywhere (``front_latency: predicted``): an
#: ablation row of the report, not a method a protocol names.
MODNAS_PREDICTED_LATENCY = "modnas-predicted-latency"
MODNAS_VARIANTS = (MODNAS, MODNAS_PREDICTED_LATENCY)
DEVICE_GROUPS = ("protocol", "train", "test")
_STRICT = ConfigDict(extra="forbid")


def all_methods() -> tuple[str, ...]:
    from modnas.baselines.methods import METHODS

    return (MODNAS, *METHODS)


class ModnasSettings(BaseModel):
    """How the MODNAS side of the comparison is obtained: fresh searches, or existing run directories."""

    model_config = _STRICT

    config: str | None = Field(None, description="search config YAML (default: modnas's defaults)")
    overrides: dict[str, Any] = Field(default_factory=dict, description="search config keys, e.g. epochs: 5")
    runs: list[str] = Field(default_factory=list, description="existing run directories to reuse, one per seed")


class Protocol(BaseModel):
    """Methods x devices x seeds at one query budget K."""

    model_config = _STRICT

    space: str = Field(DEFAULT_SPACE, description="the search space (a built-in name or package.module:attr)")
    methods: list[str] = Field(default_factory=lambda: list(all_methods()))
    devices: list[str] = Field(default_factory=lambda: ["protocol"], validate_default=True)
    seeds: list[int] = Field(default_factory=lambda: [0])
    budget: StrictInt = Field(200, ge=1, description="K: MODNAS's total budget; a baseline's per device")
    small_budget: StrictInt | None = Field(
        None, ge=1, description="the same-total-budget view per device (default: K / the protocol devices)"
    )
    curve_points: StrictInt = Field(40, ge=2, le=1000, description="budgets at which the HV-versus-budget curves are scored")
    workers: StrictInt = Field(2, ge=1, le=64, description="processes running (method, device, seed) jobs")
    modnas: ModnasSettings = Field(default_factory=ModnasSettings)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        known = all_methods()
        for name in value:
            if name not in known:
                raise ValueError(f"unknown method {name!r}; choose from: {', '.join(known)}")
        if not value:
            raise ValueError("name at least one method")
        return list(dict.fromkeys(value))

    @field_validator("space")
    @classmethod
    def _space(cls, value: str) -> str:
        try:
            get_problem(value).require_quality_truth("the baselines")
        except ModnasError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def problem(self) -> Problem:
        return get_problem(self.space)

    @field_validator("devices", mode="before")
    @classmethod
    def _device_group(cls, value: Any, info: Any) -> Any:
        if value == ["protocol"]:
            value = "protocol"
        if isinstance(value, str):
            if value not in DEVICE_GROUPS:
                raise ValueError(f"unknown device group {value!r}; use protocol, train, test or a list of devices")
            if "space" not in info.data:  # already reported as a space error
                return []
            return list(get_problem(info.data["space"]).devices.names(value))
        return value

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: list[str], info: Any) -> list[str]:
        if "space" not in info.data:
            return value
        protocol = get_problem(info.data["space"]).devices.names("protocol")
        for name in value:
            if name not in protocol:
                raise ValueError(
                    f"unknown device {name!r}; the benchmark covers the {len(protocol)} protocol devices"
                )
        if not value:
            raise ValueError("name at least one device")
        # protocol order, so that tables and figures always list devices the same way
        return [d for d in protocol if d in value]

    @model_validator(mode="after")
    def _budget_fits_the_space(self) -> Protocol:
        every = self.problem.space.enumerate()
        for name in ("budget", "small_budget"):
            value = getattr(self, name)
            if every is not None and value is not None and value > len(every):
                raise ValueError(f"{name} {value} is more than the {len(every)} architectures of {self.space}")
        return self

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("name at least one seed")
        if any(s < 0 for s in value):
            raise ValueError("seeds must be >= 0")
        return list(dict.fromkeys(value))

    @property
    def baselines(self) -> list[str]:
        return [m for m in self.methods if m != MODNAS]

    @property
    def same_total_budget(self) -> int:
        """Per-device budget of the same-total view: K spread over the protocol devices MODNAS serves at once."""
        return self.small_budget or max(1, round(self.budget / len(self.problem.devices.names("protocol"))))

    def curve_budgets(self) -> list[int]:
        """Budgets 1..K at which the curves are scored: every budget up to 20, then evenly spaced (log-like)."""
        import numpy as np

        grid = set(range(1, min(self.budget, 20) + 1))
        grid |= {int(round(b)) for b in np.geomspace(1, self.budget, self.curve_points)}
        grid |= {self.same_total_budget, self.budget}
        return sorted(b for b in grid if 1 <= b <= self.budget)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def make_protocol(data: dict[str, Any] | None = None) -> Protocol:
    """Validate a mapping into a :class:`Protocol` (one-line :class:`ModnasError` on failure)."""
    try:
        return Protocol.model_validate(dict(data or {}))
    except ValidationError as err:
        raise ModnasError(validation_error_line(err, "protocol")) from None


def load_protocol(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Protocol:
    """Defaults, then the YAML file at ``path``, then ``overrides`` (``None`` values skipped)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml_mapping(path, "protocol file")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return make_protocol(data)


def quick_protocol(space: str = DEFAULT_SPACE) -> Protocol:
    """A protocol that runs in seconds: 2 devices, MODNAS shrunk to 2 steps, cheap baselines, K = 20.

    NB201's two devices are fpga and pixel2; another space uses its first two test (else training) devices.
    """
    if space == DEFAULT_SPACE:
        devices = ["fpga", "pixel2"]
    else:
        names = get_problem(space).devices
        devices = list((names.names("test") or names.names("train"))[:2])
    data: dict[str, Any] = {
        "methods": [MODNAS, "random", "local", "morea", "nsga2"],
        "devices": devices,
        "seeds": [0],
        "budget": 20,
        "curve_points": 10,
        "workers": 1,
        "modnas": {"overrides": QUICK_MODNAS},
    }
    if space != DEFAULT_SPACE:
        data["space"] = space
    return make_protocol(data)


#: A MODNAS search small enough for a smoke test (seconds); its HV means nothing.
QUICK_MODNAS: dict[str, Any] = {
    "epochs": 1,
    "steps_per_epoch": 2,
    "pretrain_steps": 5,
    "initial_queries": 10,
    "preferences_per_device": 2,
    "eval_rays": 6,
    "error_predictor": {"steps": 20, "ensemble": 1},
}
