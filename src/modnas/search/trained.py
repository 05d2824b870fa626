"""Using a finished search: Pareto architectures for any device (zero-shot) and exporting one architecture.

A trained hypernetwork maps (preference, device embedding) to architecture logits, so a new device needs only its
reference latencies: no retraining, one forward pass per preference. The run's space, ground truth and devices
come from its recorded problem (``space`` in ``config.yaml``; runs that predate it are NB201).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modnas.config import SearchConfig
from modnas.errors import ModnasError
from modnas.evaluation import evaluation_preferences, nondominated_mask, to_simplex, validate_preference
from modnas.export import export_architecture  # noqa: F401  (its public home before modnas.export held it)
from modnas.hardware.devices import Device
from modnas.hardware.training import to_device_unit
from modnas.hypernet import HyperNetwork
from modnas.problem import Problem, get_problem
from modnas.rundir import RunDir
from modnas.search.base import build_hypernet
from modnas.search.benchmark import measured_front, refine_front
from modnas.search.error_model import ErrorPredictor, QueryBudget


@dataclass
class TrainedSearch:
    """The networks of a finished (or interrupted) run, ready to answer queries."""

    run_dir: Path
    config: SearchConfig
    hypernet: HyperNetwork
    error_model: ErrorPredictor
    predictor: torch.nn.Module
    problem: Problem
    #: benchmark mode: the architectures whose true error the search read (``front: hypernet+measured`` uses them)
    budget: QueryBudget | None = None

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainedSearch:
        """Load ``config.yaml`` and ``checkpoints/last.pt``; a missing or damaged run is a one-line error."""
        run = RunDir(run_dir).require()
        path, checkpoint = run.path, run.checkpoint_file
        config = run.config()
        if not checkpoint.is_file():
            raise ModnasError(f"{str(path)!r} is not a finished epoch of a run: {checkpoint.name} is missing")
        problem = get_problem(config.space)
        state = run.checkpoint()
        try:
            hypernet = build_hypernet(config, problem)
            hypernet.load_state_dict(state["hypernet"])
            if config.mode == "oneshot":  # no fitted error model: the trained supernet estimates errors
                from modnas.search.oneshot import SupernetError

                error_model = SupernetError(config, state["oneshot"]["supernet"])
            else:
                error_model = ErrorPredictor(config.error_predictor, problem.space)
                error_model.load_state_dict(state["error_model"])
                budget = QueryBudget.from_state_dict(state["budget"], problem)
        except ModnasError:
            raise  # already one line (e.g. a one-shot run's dataset is missing)
        except (KeyError, RuntimeError, EOFError, OSError, ValueError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModnasError(f"checkpoint {str(checkpoint)!r} is damaged or from another version ({first})") from None
        hypernet.eval()
        error_model.eval()
        predictor = problem.predictor if config.hardware_predictor is None else problem.load_predictor(
            config.hardware_predictor
        )
        trained = cls(path, config, hypernet, error_model, predictor, problem)
        if config.mode == "benchmark":
            trained.budget = budget
        trained._warm_up()
        return trained

    @property
    def space(self) -> Any:
        return self.problem.space

    def device(self, name: str) -> Device:
        """A device of the run's space by name (built-in or a stored profile)."""
        return self.problem.devices.get(name)

    def _warm_up(self) -> None:
        """Read the ground truth and run each network once, so the first query is as fast as later ones."""
        device = self.device(self.config.evaluation_devices()[-1])
        self.problem.true_latencies(device, list(self.space.reference_architectures()[:1]))
        self.front(device, n_prefs=2)

    @torch.no_grad()
    def architectures(self, device: Device, preferences: np.ndarray) -> np.ndarray:
        """Canonical key of the architecture reported for each preference on ``device``: the hypernetwork's
        pick (moved by :func:`~modnas.search.benchmark.refine_front` when the run's ``refine_rounds`` > 0), or a
        measured architecture that dominates it when the run's ``front`` is ``hypernet+measured``."""
        prefs = torch.tensor(preferences, dtype=torch.float32)
        emb = torch.tensor(device.embedding, dtype=torch.float32).expand(len(prefs), -1)
        choices = self.space.from_logits(self.hypernet(prefs, emb)).reshape(-1, self.space.num_decisions)
        chosen = np.asarray(self.space.keys(choices), dtype=object)
        cfg = self.config
        if self.budget is not None and cfg.refine_rounds:
            chosen = refine_front(
                np.asarray(preferences, dtype=np.float64), chosen, device, self.error_model, self.predictor,
                cfg.objectives, self.problem, self.budget, cfg.error_predictor.degenerate_error, cfg.scalarisation,
                cfg.refine_rounds,
            )
        if self.budget is None or self.config.front == "hypernet":
            return chosen
        return measured_front(
            np.asarray(preferences, dtype=np.float64), chosen, device, self.error_model, self.predictor,
            self.config.objectives, self.problem, self.budget, self.config.error_predictor.degenerate_error,
            self.config.front_latency,
        )

    def preferences(self, n_prefs: int | None = None) -> np.ndarray:
        """``n_prefs`` evaluation rays on the simplex (default: the run's ``eval_rays``, what its fronts use)."""
        n = self.config.eval_rays if n_prefs is None else n_prefs
        return to_simplex(evaluation_preferences(len(self.config.objectives), n))

    def measured(self, key: str) -> bool:
        """Whether the search read this architecture's true error (benchmark mode's queries)."""
        return self.budget is not None and str(key) in self.budget

    @torch.no_grad()
    def predicted(self, device: Device, keys: np.ndarray | list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted error (%) and latency (device unit) of canonical keys."""
        onehot = self.space.to_onehot(self.space.parse_many([str(k) for k in keys]))
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
        chosen = [str(k) for k in self.architectures(device, prefs)]
        first_ray = {}
        for ray, key in enumerate(chosen):
            first_ray.setdefault(key, ray)
        keys = self.space.sort_keys(list(first_ray))
        error, latency = self.predicted(device, keys)
        energy = self._energy(device, keys)
        true_latency = self._true_latencies(device, keys)
        true_error = self._true_errors(keys)
        columns = [error, latency] + ([energy] if energy is not None else [])
        on_front = nondominated_mask(np.stack(columns, axis=1))
        rows = []
        for k, (key, extra) in enumerate(zip(keys, self.problem.truth.describe(keys))):
            row: dict[str, Any] = {
                **extra,
                "arch_str": key,
                "preference": [round(float(v), 6) for v in prefs[first_ray[key]]],
                "predicted_error": float(error[k]),
                "predicted_latency_ms": float(latency[k]),
                "on_predicted_front": bool(on_front[k]),
                "measured": self.measured(key),
                "true_error": true_error[k],
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
        keys = [r["arch_str"] for r in rows]
        known = basis == "known"
        error = np.array([r["true_error" if known else "predicted_error"] for r in rows])
        latency = np.array([
            r["true_latency_ms"] if known and r["true_latency_ms"] is not None else r["predicted_latency_ms"]
            for r in rows
        ])
        energy = self._energy(device, keys)
        if energy is None and max_energy_mj is not None:  # a limit on energy, which the run did not optimise
            energy = self.problem.exact_model("energy", device.name).predict(self.space.parse_many(keys))
        values = {"latency_ms": latency, "accuracy": 100.0 - error}
        objectives = [error, latency]
        if energy is not None:
            values["energy_mJ"] = energy
            objectives += [energy] if len(self.config.objectives) > 2 else []
        chosen = select(error, values, limits, rule, np.stack(objectives, axis=1))
        row = dict(rows[chosen.index])
        if energy is not None:
            row["energy_mJ"] = float(energy[chosen.index])
        row["latency_basis"] = (
            "known" if known and row["true_latency_ms"] is not None else "predicted"
        )
        return {
            **row, "device": device.name, "space": self.config.space, "run": str(self.run_dir),
            "selection": {**chosen.to_dict(), "basis": basis},
        }

    def _energy(self, device: Device, keys: list[str]) -> np.ndarray | None:
        """The third objective (NB201: energy in mJ) of canonical keys when the run has one (its exact model)."""
        if len(self.config.objectives) < 3:
            return None
        model = self.problem.exact_model(self.config.objectives[2], device.name)
        return model.predict(self.space.parse_many(keys))

    def _true_errors(self, keys: list[str]) -> list[float | None]:
        """True errors from the ground truth (None where it has none)."""
        values = self.problem.truth.evaluate(keys, None, ("error",))[:, 0]
        return [None if np.isnan(v) else float(v) for v in values]

    def _true_latencies(self, device: Device, keys: list[str]) -> list[float | None]:
        """The device's true latencies, or for a device without ground truth its measurements (profile)."""
        return [None if np.isnan(v) else float(v) for v in self.problem.true_latencies(device, keys)]

    def choose(self, device: Device, preference: np.ndarray | list[float]) -> dict[str, Any]:
        """The architecture for one preference (validated: non-negative, summing to 1)."""
        pref = validate_preference(preference, n_objectives=len(self.config.objectives))
        key = str(self.architectures(device, pref[None])[0])
        error, latency = self.predicted(device, [key])
        energy = self._energy(device, [key])
        return {
            **({"energy_mJ": float(energy[0])} if energy is not None else {}),
            **self.problem.truth.describe([key])[0],
            "arch_str": key,
            "space": self.config.space,
            "device": device.name,
            "preference": pref.tolist(),
            "predicted_error": float(error[0]),
            "predicted_latency_ms": float(latency[0]),
            "measured": self.measured(key),
            "true_error": self._true_errors([key])[0],
            "true_latency_ms": self._true_latencies(device, [key])[0],
            "run": str(self.run_dir),
        }




def profile_device(path: str | Path) -> Device:
    """A device from a profile JSON (not stored): for ``modnas front --profile``."""
    from modnas.hardware.profiles import load_profile, register_profile, space_devices

    profile = load_profile(path)
    return register_profile(profile, space_devices(profile.space).scratch())

