"""Multi-objective baselines that search a problem's space for one device with true objective queries.

Every method sees the space through its decisions (:class:`~modnas.spaces.base.SearchSpace`: sampling, one-move
mutations, the categorical parameters of Optuna, conditional where a decision is gated) and reads true objective
values only through an :class:`~modnas.baselines.oracle.Oracle`, which counts distinct architectures and stops at
the budget. A method runs until the budget is spent, so each run queries exactly ``budget`` distinct
architectures.

* ``random`` -- uniform random search without repeats (uniform over architectures where the space can be listed).
* ``local`` -- Pareto local search as in the MODNAS paper's baselines: start from one random architecture; then
  mutate one random active decision of a random member of the current non-dominated set.
* ``morea`` -- regularised evolution with non-dominated sorting (MO-REA): a queue of the ``P`` newest
  architectures; the parent wins a tournament of ``S`` random members on (Pareto rank, crowding distance) within
  the population; the child differs in one decision; the oldest member leaves.
* ``nsga2``, ``motpe``, ``gp`` -- Optuna's ``NSGAIISampler``, multi-objective ``TPESampler`` (multivariate) and
  ``GPSampler`` (log-EHVI), driven by ask/tell.

Settings that depend on the budget are fixed by :func:`initial_size` (population size, random start-up trials):
20 at a budget of 200, 3 at a budget of 10, so a small-budget run still spends most of its queries searching.
"""

from __future__ import annotations

import time
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from modnas.baselines.oracle import Oracle
from modnas.errors import ModnasError
from modnas.problem import Problem, get_problem

#: Consecutive already-queried suggestions after which an Optuna study is handed a fresh random architecture.
MAX_REPEATS = 50
#: Mutation attempts before a mutation-based method falls back to a random unqueried architecture.
MAX_MUTATION_TRIES = 100
#: GPSampler acquisition effort (Optuna's defaults: 2048 preliminary samples, 10 local searches); reduced so that
#: a 200-query run takes ~20 s instead of ~60 s on one CPU core.
GP_PRELIMINARY_SAMPLES = 256
GP_LOCAL_SEARCHES = 4


@dataclass(frozen=True)
class BaselineResult:
    """One baseline run: the distinct architectures it queried, in order, and its search time."""

    method: str
    device: str
    seed: int
    budget: int
    objectives: tuple[str, ...]
    queried: tuple[str, ...]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["objectives"] = list(self.objectives)
        out["queried"] = list(self.queried)
        return out


def initial_size(budget: int) -> int:
    """Population size / random start-up trials for a budget: ``budget // 10`` clipped to 3..20."""
    return min(20, max(3, budget // 10))


# -- shared pieces -------------------------------------------------------------------------------------------------


def _finite(values: np.ndarray) -> np.ndarray:
    # a missing hardware value (energy of a few cells) must lose every comparison without breaking the maths
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=1e12, posinf=1e12)


def random_unqueried(oracle: Oracle, rng: np.random.Generator) -> str:
    """A uniformly random architecture the oracle has not been asked about (uniform over the listed architectures
    of an enumerable space, decision by decision otherwise)."""
    space = oracle.problem.space
    archs = space.enumerate()
    for _ in range(1000):
        if archs is not None:
            key = space.to_key(archs[int(rng.integers(len(archs)))])
        else:
            key = space.to_key(space.sample(1, rng)[0])
        if key not in oracle:
            return key
    if archs is None:
        raise ModnasError("could not draw an architecture that was not queried yet")
    # only reachable when nearly the whole space was queried: draw from the complement explicitly
    free = space.sort_keys(list(set(space.keys(archs)) - set(oracle.queried)))
    return free[int(rng.choice(len(free)))]


def mutate(key: str, rng: np.random.Generator, space: Any) -> str:
    """The architecture that differs from ``key`` in one random active decision, set to another random option."""
    choices = space.parse(key).copy()
    active = np.flatnonzero(space.active(choices[None])[0] & (space.option_counts() > 1))
    decision = int(active[int(rng.integers(len(active)))])
    n = int(space.option_counts()[decision])
    choices[decision] = (choices[decision] + int(rng.integers(1, n))) % n
    return space.to_key(space.canonicalise(choices[None])[0])


def _new_child(parent: Callable[[], str], oracle: Oracle, rng: np.random.Generator) -> str:
    """Mutate parents drawn by ``parent()`` until the child is new; a random new architecture if that fails."""
    for _ in range(MAX_MUTATION_TRIES):
        child = mutate(parent(), rng, oracle.problem.space)
        if child not in oracle:
            return child
    return random_unqueried(oracle, rng)


def pareto_ranks(values: np.ndarray) -> np.ndarray:
    """Non-dominated sorting rank of each row (0 = non-dominated), all objectives minimised."""
    import moocore

    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(_finite(values)), dtype=np.int64)


def crowding_distance(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within each rank, objectives scaled by their range over ``values``."""
    pts = _finite(values)
    span = pts.max(axis=0) - pts.min(axis=0)
    pts = (pts - pts.min(axis=0)) / np.where(span > 0, span, 1.0)
    dist = np.zeros(len(pts))
    for rank in np.unique(ranks):
        members = np.flatnonzero(ranks == rank)
        for m in range(pts.shape[1]):
            order = members[np.argsort(pts[members, m], kind="stable")]
            dist[order[0]] = dist[order[-1]] = np.inf
            if len(order) > 2:
                dist[order[1:-1]] += pts[order[2:], m] - pts[order[:-2], m]
    return dist


# -- methods -------------------------------------------------------------------------------------------------------


def _random_search(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    while not oracle.exhausted:
        oracle.query(random_unqueried(oracle, rng))
    return {}


def _local_search(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    oracle.query(random_unqueried(oracle, rng))
    while not oracle.exhausted:
        queried = np.asarray(oracle.queried, dtype=object)
        front = queried[pareto_ranks(oracle.values()) == 0]
        child = _new_child(lambda front=front: str(front[int(rng.integers(len(front)))]), oracle, rng)
        oracle.query(child)
    return {}


def _morea(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    population_size = initial_size(oracle.budget)
    sample_size = max(2, population_size // 4)
    population: deque[str] = deque()
    while len(population) < population_size and not oracle.exhausted:
        idx = random_unqueried(oracle, rng)
        oracle.query(idx)
        population.append(idx)

    def tournament() -> str:
        members = list(population)
        values = np.stack([oracle.query(i) for i in members])  # already queried: free
        ranks = pareto_ranks(values)
        crowd = crowding_distance(values, ranks)
        sample = rng.choice(len(members), size=min(sample_size, len(members)), replace=False)
        # lowest rank first, then the least crowded; the random sample order breaks the remaining ties
        best = min(sample, key=lambda k: (ranks[k], -crowd[k]))
        return members[int(best)]

    while not oracle.exhausted:
        child = _new_child(tournament, oracle, rng)
        oracle.query(child)
        population.append(child)
        population.popleft()
    return {"population_size": population_size, "sample_size": sample_size}


def _optuna_loop(oracle: Oracle, rng: np.random.Generator, sampler: Any) -> None:
    """Ask/tell until the budget is spent; repeated suggestions are told their known values for free.

    Every decision of the space is one categorical parameter named after it; a gated decision is only suggested
    when its gate is open (Optuna's conditional search spaces), so inactive decisions never reach the sampler.
    """
    optuna = _import_optuna()
    space = oracle.problem.space
    study = optuna.create_study(directions=["minimize"] * len(oracle.objectives), sampler=sampler)
    repeats = 0
    while not oracle.exhausted:
        trial = study.ask()
        key = space.to_key(_suggest(trial, space))
        repeats = repeats + 1 if key in oracle else 0
        study.tell(trial, [float(v) for v in _finite(oracle.query(key))])
        if repeats >= MAX_REPEATS:
            # a sampler stuck on known architectures would never spend its budget: hand it a new one
            fresh = space.parse(random_unqueried(oracle, rng))
            active = space.active(fresh[None])[0]
            study.enqueue_trial(
                {d.name: d.options[int(c)] for d, c, on in zip(space.decisions, fresh, active) if on}
            )
            repeats = 0


def _suggest(trial: Any, space: Any) -> np.ndarray:
    """Choice indices of one Optuna trial: decisions in order, a gated one only where its gate is open."""
    choices = np.zeros(space.num_decisions, dtype=np.int64)
    for i, decision in enumerate(space.decisions):
        if space.active(choices[None])[0][i]:  # gates only look at earlier decisions, already set
            choices[i] = decision.options.index(trial.suggest_categorical(decision.name, decision.options))
    return choices


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ModnasError("the Optuna baselines need Optuna: pip install 'modnas[baselines]'") from None
    return optuna


def _optuna_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _nsga2(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    optuna = _import_optuna()
    population_size = max(2, initial_size(oracle.budget))
    sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=_optuna_seed(rng))
    _optuna_loop(oracle, rng, sampler)
    return {"population_size": population_size}


def _motpe(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    optuna = _import_optuna()
    startup = initial_size(oracle.budget)
    sampler = optuna.samplers.TPESampler(
        n_startup_trials=startup, multivariate=True, seed=_optuna_seed(rng), warn_independent_sampling=False
    )
    _optuna_loop(oracle, rng, sampler)
    return {"n_startup_trials": startup, "multivariate": True}


def _gp(oracle: Oracle, rng: np.random.Generator) -> dict[str, Any]:
    optuna = _import_optuna()
    startup = initial_size(oracle.budget)
    # GPSampler models no conditional parameters: a gated decision (OFA's slots) is drawn at random, and saying
    # so once per parameter and trial would bury the log
    sampler = optuna.samplers.GPSampler(
        n_startup_trials=startup, seed=_optuna_seed(rng), deterministic_objective=True,
        warn_independent_sampling=False,
    )
    settings: dict[str, Any] = {"n_startup_trials": startup, "deterministic_objective": True}
    # private knobs of Optuna's acquisition optimiser; left at Optuna's defaults if a release renames them
    for attr, value, key in (
        ("_n_preliminary_samples", GP_PRELIMINARY_SAMPLES, "preliminary_samples"),
        ("_n_local_search", GP_LOCAL_SEARCHES, "local_searches"),
    ):
        if hasattr(sampler, attr):
            setattr(sampler, attr, value)
            settings[key] = value
    _optuna_loop(oracle, rng, sampler)
    return settings


Method = Callable[[Oracle, np.random.Generator], dict[str, Any]]

#: Every baseline by name, with a one-line description (``modnas benchmark`` and the report use both).
METHODS: dict[str, tuple[Method, str]] = {
    "random": (_random_search, "random search (uniform, no repeats)"),
    "local": (_local_search, "Pareto local search (mutate a random non-dominated member)"),
    "morea": (_morea, "MO-REA: regularised evolution with non-dominated sorting"),
    "nsga2": (_nsga2, "NSGA-II (Optuna NSGAIISampler)"),
    "motpe": (_motpe, "multi-objective TPE (Optuna TPESampler, multivariate)"),
    "gp": (_gp, "Gaussian-process log-EHVI (Optuna GPSampler, reduced acquisition effort)"),
}


def check_method(name: str) -> str:
    """Validate a baseline name."""
    if name not in METHODS:
        raise ModnasError(f"unknown baseline {name!r}; choose from: {', '.join(METHODS)}")
    return name


def method_rng(seed: int, device: str) -> np.random.Generator:
    """The generator of one (seed, device) run: independent across devices, the same for every method."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ModnasError(f"seed must be an integer >= 0, got {seed!r}")
    return np.random.default_rng([int(seed), zlib.crc32(device.encode())])


def run_baseline(
    method: str,
    device: str,
    budget: int,
    seed: int = 0,
    objectives: Sequence[str] = ("error", "latency"),
    problem: Problem | str = "nb201",
) -> BaselineResult:
    """Run one baseline on one device until exactly ``budget`` distinct architectures have been queried."""
    search = METHODS[check_method(method)][0]
    prob = get_problem(problem)
    archs = prob.space.enumerate()
    limit = len(archs) if archs is not None else None
    if (
        isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1
        or (limit is not None and budget > limit)
    ):
        raise ModnasError(f"budget must be an integer in 1..{limit or 'inf'}, got {budget!r}")
    oracle = Oracle(device, int(budget), objectives, prob)
    rng = method_rng(seed, device)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature and sampler warnings
        _quiet_optuna()
        settings = search(oracle, rng)
    seconds = time.perf_counter() - start
    if oracle.used != budget:  # pragma: no cover - every method loops until the oracle is exhausted
        raise ModnasError(f"{method} queried {oracle.used} architectures instead of {budget}")
    return BaselineResult(
        method=method,
        device=device,
        seed=int(seed),
        budget=int(budget),
        objectives=oracle.objectives,
        queried=tuple(oracle.queried),
        seconds=seconds,
        settings=settings,
    )


def _quiet_optuna() -> None:
    try:
        import optuna
    except ImportError:  # pragma: no cover - only the Optuna methods need it, and they import it themselves
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
