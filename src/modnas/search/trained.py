"""Using a finished search: Pareto architectures for any device (zero-shot) and exporting one architecture.

A trained hypernetwork maps (preference, device embedding) to architecture logits, so a new device needs only its
10 reference latencies: no retraining, one forward pass per preference.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from modnas.config import SearchConfig, make_config
from modnas.errors import ModnasError
from modnas.evaluation import evaluation_preferences, nondominated_mask, to_simplex, validate_preference
from modnas.hardware.devices import Device
from modnas.hardware.predictor import MetaPredictor, load_predictor
from modnas.hardware.training import to_device_unit
from modnas.hypernet import HyperNetwork, make_hypernet
from modnas.search.benchmark import measured_front
from modnas.search.error_model import ErrorPredictor, QueryBudget
from modnas.spaces.nb201.encoding import from_onehot, index_to_string, to_index, to_onehot
from modnas.tables.nb201 import nb201_tables


@dataclass
class TrainedSearch:
    """The networks of a finished (or interrupted) run, ready to answer queries."""

    run_dir: Path
    config: SearchConfig
    hypernet: HyperNetwork
    error_model: ErrorPredictor
    predictor: MetaPredictor
    #: benchmark mode: the architectures whose true error the search read (``front: hypernet+measured`` uses them)
    budget: QueryBudget | None = None

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainedSearch:
        """Load ``config.yaml`` and ``checkpoints/last.pt``; a missing or damaged run is a one-line error."""
        path = Path(run_dir)
        if not path.is_dir():
            raise ModnasError(f"run directory {str(path)!r} does not exist")
        config_file, checkpoint = path / "config.yaml", path / "checkpoints" / "last.pt"
        for needed in (config_file, checkpoint):
            if not needed.is_file():
                raise ModnasError(f"{str(path)!r} is not a finished epoch of a run: {needed.name} is missing")
        try:
            config = make_config(yaml.safe_load(config_file.read_text(encoding="utf-8")) or {})
        except yaml.YAMLError:
            raise ModnasError(f"{str(config_file)!r} is not valid YAML") from None
        try:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            hypernet = make_hypernet(
                config.hypernet,
                num_objectives=len(config.objectives),
                **({"hidden": config.hypernet_hidden} if config.hypernet == "mlp" else {}),
            )
            hypernet.load_state_dict(state["hypernet"])
            if config.mode == "oneshot":  # no fitted error model: the trained supernet estimates errors
                from modnas.search.oneshot import SupernetError

                error_model = SupernetError(config, state["oneshot"]["supernet"])
            else:
                error_model = ErrorPredictor(config.error_predictor)
                error_model.load_state_dict(state["error_model"])
                budget = QueryBudget.from_state_dict(state["budget"])
        except ModnasError:
            raise  # already one line (e.g. a one-shot run's dataset is missing)
        except (KeyError, RuntimeError, EOFError, OSError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModnasError(f"checkpoint {str(checkpoint)!r} is damaged or from another version ({first})") from None
        except Exception as exc:  # unpickling errors of a truncated file come in many types
            raise ModnasError(f"checkpoint {str(checkpoint)!r} is not readable ({type(exc).__name__})") from None
        hypernet.eval()
        error_model.eval()
        trained = cls(path, config, hypernet, error_model, load_predictor()[0])
        if config.mode == "benchmark":
            trained.budget = budget
        trained._warm_up()
        return trained

    def _warm_up(self) -> None:
        """Read the tables and run each network once, so the first query is as fast as later ones."""
        from modnas.hardware.devices import registry

        nb201_tables.accuracy(0)
        nb201_tables.latency("fpga", 0)
        self.front(registry.get("fpga"), n_prefs=2)

    @torch.no_grad()
    def architectures(self, device: Device, preferences: np.ndarray) -> np.ndarray:
        """Canonical index of the architecture reported for each preference on ``device``: the hypernetwork's
        pick, or a measured architecture that dominates it when the run's ``front`` is ``hypernet+measured``."""
        prefs = torch.tensor(preferences, dtype=torch.float32)
        emb = torch.tensor(device.embedding, dtype=torch.float32).expand(len(prefs), -1)
        chosen = np.atleast_1d(to_index(from_onehot(self.hypernet(prefs, emb))))
        if self.budget is None or self.config.front == "hypernet":
            return chosen
        return measured_front(
            np.asarray(preferences, dtype=np.float64), chosen, device, self.error_model, self.predictor,
            self.config.objectives, self.budget, self.config.error_predictor.degenerate_error, self.config.front_latency,
        )

    def preferences(self, n_prefs: int | None = None) -> np.ndarray:
        """``n_prefs`` evaluation rays on the simplex (default: the run's ``eval_rays``, what its fronts use)."""
        n = self.config.eval_rays if n_prefs is None else n_prefs
        return to_simplex(evaluation_preferences(len(self.config.objectives), n))

    def measured(self, index: int) -> bool:
        """Whether the search read this architecture's true error (benchmark mode's queries)."""
        return self.budget is not None and int(index) in self.budget

    @torch.no_grad()
    def predicted(self, device: Device, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted error (%) and latency (device unit) of canonical indices."""
        onehot = to_onehot(nb201_tables.ops_codes[indices])
        error = self.error_model.error(onehot).numpy()
        emb = torch.tensor(device.embedding, dtype=torch.float32)[None]
        latency = to_device_unit(self.predictor(onehot, emb)[:, 0].numpy(), device)
        return error, latency

    def front(self, device: Device, n_prefs: int = 24) -> list[dict[str, Any]]:
        """Distinct architectures over ``n_prefs`` preference rays, with predicted (and, where known, true) metrics.

        Rows are sorted by predicted error; ``on_predicted_front`` marks the non-dominated ones.
        """
        if n_prefs < 1:
            raise ModnasError(f"--n-prefs must be >= 1, got {n_prefs}")
        prefs = self.preferences(n_prefs)
        chosen = self.architectures(device, prefs)
        indices, first_ray = np.unique(chosen, return_index=True)
        error, latency = self.predicted(device, indices)
        energy = self._energy(device, indices)
        true_latency = _true_latencies(device, indices)
        columns = [error, latency] + ([energy] if energy is not None else [])
        on_front = nondominated_mask(np.stack(columns, axis=1))
        rows = []
        for k, idx in enumerate(indices):
            row: dict[str, Any] = {
                "arch_index": int(idx),
                "arch_str": index_to_string(int(idx)),
                "preference": [round(float(v), 6) for v in prefs[first_ray[k]]],
                "predicted_error": float(error[k]),
                "predicted_latency_ms": float(latency[k]),
                "on_predicted_front": bool(on_front[k]),
                "measured": self.measured(int(idx)),
                "true_error": float(100.0 - nb201_tables.accuracy(int(idx))),
                "true_latency_ms": true_latency[k],
            }
            if energy is not None:
                row["energy_mJ"] = float(energy[k])  # the exact energy model: predicted equals true
            rows.append(row)
        return sorted(rows, key=lambda r: r["predicted_error"])

    def pick(
        self,
        device: Device,
        *,
        max_latency_ms: float | None = None,
        max_energy_mj: float | None = None,
        min_accuracy: float | None = None,
        rule: str = "accuracy",
        n_prefs: int = 24,
        basis: str = "predicted",
    ) -> dict[str, Any]:
        """One architecture of :meth:`front` for ``device``: the most accurate one within the limits, or the knee.

        ``basis="predicted"`` judges by the run's predictions (known for any device, zero-shot);
        ``basis="known"`` by the table error and the device's table or measured latency where it has one (the
        predicted latency elsewhere). When no architecture meets the limits, the closest one is returned with
        ``selection["satisfied"] = False`` (see :mod:`modnas.evaluation.selection` for the rules). The row of
        :meth:`front` comes back with ``device``, ``run`` and ``selection`` (rule, limits and a one-line note).
        """
        from modnas.evaluation.selection import check_rule, make_limits, select

        limits = make_limits(max_latency_ms, max_energy_mj, min_accuracy)
        rule = check_rule(rule)
        if basis not in ("predicted", "known"):
            raise ModnasError(f"unknown basis {basis!r}; choose predicted or known")
        rows = self.front(device, n_prefs)
        indices = np.array([r["arch_index"] for r in rows])
        known = basis == "known"
        error = np.array([r["true_error" if known else "predicted_error"] for r in rows])
        latency = np.array([
            r["true_latency_ms"] if known and r["true_latency_ms"] is not None else r["predicted_latency_ms"]
            for r in rows
        ])
        energy = self._energy(device, indices)
        if energy is None and max_energy_mj is not None:
            from modnas.hardware.energy import energy_model

            energy = energy_model(device.name).predict(nb201_tables.ops_codes[indices])
        values = {"latency_ms": latency, "accuracy": 100.0 - error}
        objectives = [error, latency]
        if energy is not None:
            values["energy_mJ"] = energy
            objectives += [energy] if "energy" in self.config.objectives else []
        chosen = select(error, values, limits, rule, np.stack(objectives, axis=1))
        row = dict(rows[chosen.index])
        if energy is not None:
            row["energy_mJ"] = float(energy[chosen.index])
        row["latency_basis"] = (
            "known" if known and row["true_latency_ms"] is not None else "predicted"
        )
        return {**row, "device": device.name, "run": str(self.run_dir), "selection": {**chosen.to_dict(), "basis": basis}}

    def _energy(self, device: Device, indices: np.ndarray) -> np.ndarray | None:
        """Energy (mJ) of canonical indices when energy is an objective (eyeriss and fpga only)."""
        if "energy" not in self.config.objectives:
            return None
        from modnas.hardware.energy import energy_model

        return energy_model(device.name).predict(nb201_tables.ops_codes[indices])

    def choose(self, device: Device, preference: np.ndarray | list[float]) -> dict[str, Any]:
        """The architecture for one preference (validated: non-negative, summing to 1)."""
        pref = validate_preference(preference, n_objectives=len(self.config.objectives))
        idx = int(self.architectures(device, pref[None])[0])
        error, latency = self.predicted(device, np.array([idx]))
        energy = self._energy(device, np.array([idx]))
        return {
            **({"energy_mJ": float(energy[0])} if energy is not None else {}),
            "arch_index": idx,
            "arch_str": index_to_string(idx),
            "device": device.name,
            "preference": pref.tolist(),
            "predicted_error": float(error[0]),
            "predicted_latency_ms": float(latency[0]),
            "measured": self.measured(idx),
            "true_error": float(100.0 - nb201_tables.accuracy(idx)),
            "true_latency_ms": _true_latencies(device, np.array([idx]))[0],
            "run": str(self.run_dir),
        }


def _true_latencies(device: Device, indices: np.ndarray) -> list[float | None]:
    """The device's table latencies, or for a device without one its measurements (profile); None where unknown."""
    if device.has_table:
        return [float(v) for v in np.atleast_1d(nb201_tables.latency(device.name, np.asarray(indices)))]
    return [None if np.isnan(v) else float(v) for v in device.known_latencies(indices)]


_MODULE_TEMPLATE = '''"""NAS-Bench-201 network exported by modnas: no modnas needed, only PyTorch.

Run: {run}
Device: {device}; preference (error, latency): {preference}
Predicted: error {predicted_error:.2f} %, latency {predicted_latency_ms:.3g} ms{true_note}

Build with ``build()``; ``ARCH_STR`` is the architecture. Weights are not included: train it with your own
loop (the choice and its metrics are in {json_name}).
"""

import torch
from torch import nn

ARCH_STR = "{arch_str}"
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride=1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)


def make_op(name, channels):
    return {{
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(channels, channels, 1),
        "nor_conv_3x3": lambda: ReLUConvBN(channels, channels, 3),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    }}[name]()


def parse(arch_str):
    return [token.split("~")[0] for group in arch_str.split("+") for token in group.strip("|").split("|")]


class Cell(nn.Module):
    def __init__(self, ops, channels):
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x):
        nodes = [x]
        for target in range(1, 4):
            nodes.append(sum(self.edges[k](nodes[src]) for k, (dst, src) in enumerate(EDGES) if dst == target))
        return nodes[3]


class ResidualReduction(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Network(nn.Module):
    def __init__(self, arch_str=ARCH_STR, C=16, N=5, num_classes=10, in_channels=3):
        super().__init__()
        ops = parse(arch_str)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers, width = [], C
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(width, width * 2))
                width *= 2
            layers.extend(Cell(ops, width) for _ in range(N))
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.head(self.cells(self.stem(x))))


def build(num_classes=10, C=16, N=5, in_channels=3):
    return Network(ARCH_STR, C=C, N=N, num_classes=num_classes, in_channels=in_channels)


if __name__ == "__main__":
    net = build()
    print(ARCH_STR, sum(p.numel() for p in net.parameters()), "parameters")
    print(net(torch.zeros(1, 3, 32, 32)).shape)
'''


def export_architecture(choice: dict[str, Any], out: str | Path, force: bool = False) -> tuple[Path, Path]:
    """Write ``<out>.json`` (the choice) and ``<out>.py`` (a standalone PyTorch definition); refuse to overwrite."""
    from modnas.io import atomic_write_json, atomic_write_text, check_writable

    base = Path(out)
    if base.suffix in (".json", ".py"):
        base = base.with_suffix("")
    json_path, py_path = base.with_suffix(".json"), base.with_suffix(".py")
    for path in (json_path, py_path):
        if path.exists() and not force:
            raise ModnasError(f"{path} already exists; pass --force to overwrite it")
    check_writable(json_path, "export")
    true_note = (
        f"\\nTrue (NB201 table): error {choice['true_error']:.2f} %, latency {choice['true_latency_ms']:.3g} ms"
        if choice.get("true_latency_ms") is not None
        else ""
    )
    source = _MODULE_TEMPLATE.format(json_name=json_path.name, true_note=true_note.replace("\\n", "\n"), **choice)
    atomic_write_json(json_path, choice)
    atomic_write_text(py_path, source)
    return json_path, py_path


def profile_device(path: str | Path) -> Device:
    """A device from a profile JSON (not stored): for ``modnas front --profile``."""
    from modnas.hardware.devices import DeviceRegistry
    from modnas.hardware.profiles import load_profile, register_profile

    return register_profile(load_profile(path), DeviceRegistry())

