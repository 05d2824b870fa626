"""Device embeddings fitted from any measured architectures vs. from the 10 HELP reference architectures.

``test`` (the default) prints, for the 6 NB201 zero-shot test devices, Spearman's rho over all 15,625
architectures of the shipped MetaPredictor's zero-shot prediction with the embedding from the 10 reference latencies
vs. fitted (:func:`modnas.hardware.embedding_fit.fit_embedding`) from k = 10 / 20 / 50 random non-reference
architectures (mean +- std over draws), and with ``--adapt`` also fitted + few-shot adaptation on the same k
measurements (:func:`modnas.hardware.training.adapt`, as ``modnas`` does for a custom device) next to today's
10 references + k-shot adaptation.

``validate`` is how the fit's design was chosen without looking at a test device: it trains MetaPredictors on
training devices only, leaving out a fold of them (two folds of 4 of the 13), and scores design variants on the
held-out training devices the same way.

    python benchmarks/embedding_from_measurements.py test --draws 5 --adapt
    python benchmarks/embedding_from_measurements.py validate --cache /tmp/folds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from modnas.hardware.embedding_fit import (
    _affine_fit,
    _minmax,
    fit_embedding,
    starting_embeddings,
)
from modnas.hardware.predictor import MetaPredictor, load_predictor, save_predictor
from modnas.hardware.training import TrainConfig, adapt, over_all_archs, train_predictor
from modnas.spaces.nb201.devices import (
    REFERENCE_ARCH_INDICES,
    TEST_DEVICES,
    TRAIN_DEVICES,
    NB201Devices,
    all_onehots,
    latency_data,
    registry,
)
from modnas.tables.nb201 import NUM_ARCHS, nb201_tables

#: Held-out folds of the 13 training devices: HELP's 4 meta-validation devices, and a mixed fold.
FOLDS = {
    "A": ("titanx_1", "titanx_32", "titanx_256", "gold_6240"),
    "B": ("1080ti_256", "silver_4114", "samsung_a50", "pixel3"),
}
NON_REFERENCE = np.setdiff1d(np.arange(NUM_ARCHS), REFERENCE_ARCH_INDICES)


def rho_all(model: MetaPredictor, embedding: np.ndarray, true: np.ndarray) -> float:
    """Spearman over all 15,625 architectures of the zero-shot prediction with ``embedding``."""
    emb = torch.tensor(np.asarray(embedding), dtype=torch.float32)[None]
    return float(spearmanr(over_all_archs(lambda x: model(x, emb)[:, 0], all_onehots()).numpy(), true)[0])


def draw(k: int, seed: int) -> np.ndarray:
    """``k`` random non-reference architectures (the reference set is then incomplete, so the fit is used)."""
    return np.random.default_rng(seed).choice(NON_REFERENCE, size=k, replace=False)


def measurements(device: str, indices: np.ndarray) -> dict[str, float]:
    true = nb201_tables.full_column("latency", device)
    return {str(nb201_tables.arch_strings[i]): float(true[i]) for i in indices}


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values):.3f}"


# -- test: the table -------------------------------------------------------------------------------------------


def run_test(args: argparse.Namespace) -> None:
    model, _ = load_predictor(args.predictor)
    columns = ["10 refs"] + [f"fit {k}" for k in args.ks]
    if args.adapt:
        columns += [f"fit {k} + adapt" for k in args.ks] + [f"10 refs + {k}-shot" for k in args.ks]
    rows: dict[str, dict[str, list[float]]] = {}
    start = time.perf_counter()
    for name in args.devices:
        true = nb201_tables.full_column("latency", name)
        device = registry.get(name)
        cells: dict[str, list[float]] = {c: [] for c in columns}
        cells["10 refs"].append(rho_all(model, device.embedding, true))
        for k in args.ks:
            for seed in range(args.draws):
                measured = measurements(name, draw(k, seed))
                fit = fit_embedding(measured, registry, model, seed=seed)
                cells[f"fit {k}"].append(rho_all(model, np.asarray(fit.embedding), true))
                if args.adapt:
                    fitted = NB201Devices().register(
                        f"{name}_fit", fit.reference_latencies, extra_latencies=measured, references_measured=False
                    )
                    tuned = adapt(model, fitted, seed=seed)
                    cells[f"fit {k} + adapt"].append(rho_all(tuned, np.asarray(fit.embedding), true))
                    tuned = adapt(model, device, measured, seed=seed)
                    cells[f"10 refs + {k}-shot"].append(rho_all(tuned, device.embedding, true))
        rows[name] = cells
        print(f"{name}: " + ", ".join(f"{c} {mean_std(v)}" for c, v in cells.items()), flush=True)
    print(f"\n{len(args.devices)} devices, {args.draws} draws, {time.perf_counter() - start:.0f} s")
    print("| device | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(mean_std(cells[c]) if len(cells[c]) > 1 else f"{cells[c][0]:.3f}"
                                          for c in columns) + " |")
    means = {c: [np.mean(rows[n][c]) for n in rows] for c in columns}
    print("| mean | " + " | ".join(f"{np.mean(v):.3f}" for v in means.values()) + " |")


# -- validate: design choice on held-out training devices ------------------------------------------------------


def variant_fit(
    model: MetaPredictor, indices: np.ndarray, latency: np.ndarray, starts: np.ndarray, *,
    param: str = "minmax", weights: str = "relative", steps: int = 200, lr: float = 0.05, prior: float = 0.0,
) -> np.ndarray:
    """The embedding of one design variant (``param`` minmax / sigmoid / hull, ``weights`` relative / equal,
    ``prior``: weight of a penalty on the mean squared distance of ``e`` from its start, next to the squared error
    divided by the measurements' weighted variance)."""
    onehot = all_onehots()[indices]
    y = torch.tensor(latency, dtype=torch.float64)
    w = 1.0 / (len(y) * y**2) if weights == "relative" else torch.full_like(y, 1.0 / len(y))
    floor = 0.01 * float(y.min())
    base = torch.tensor(starts, dtype=torch.float32)
    if param == "minmax":
        free, to_e = base.clone(), _minmax
    elif param == "sigmoid":  # any point of [0, 1]^10, not only min 0 / max 1
        free, to_e = torch.logit(base.clamp(0.02, 0.98)), torch.sigmoid
    elif param == "hull":  # min-max normalised convex mixtures of the starts (as the predictor's training mixes)
        free = torch.eye(len(base)) * 4.0

        def to_e(z: torch.Tensor) -> torch.Tensor:
            return _minmax(torch.softmax(z, -1) @ base)
    else:
        raise ValueError(param)
    free.requires_grad_(True)
    for p in model.parameters():
        p.requires_grad_(False)
    variance = float(w @ (y - (w @ y) / w.sum()) ** 2)
    with torch.no_grad():
        e0 = to_e(free).double()

    def objective(e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        error, _, b = _affine_fit(model(onehot, e).double(), y, w, floor)
        return error / variance + prior * ((e.double() - e0) ** 2).mean(-1), b

    optimiser = torch.optim.Adam([free], lr=lr)
    for _ in range(steps):
        error, _ = objective(to_e(free))
        optimiser.zero_grad()
        error.sum().backward()
        optimiser.step()
    with torch.no_grad():
        e = to_e(free)
        error, b = objective(e)
    for p in model.parameters():
        p.requires_grad_(True)
    error = torch.where(b > 0, error, torch.full_like(error, torch.inf))
    return e[int(torch.argmin(error))].numpy()


#: Design variants (``variant_fit`` options), each a change of the first design: e = min-max normalised free
#: vector, relative squared error, 200 Adam steps. ``minmax-equal-prior1-100`` is what ``fit_embedding`` does.
VARIANTS = {
    "start-only": {"steps": 0},  # no descent: the best-fitting starting embedding
    "minmax": {},  # the first design
    "minmax-equal": {"weights": "equal"},  # absolute instead of relative squared error
    "minmax-equal-100": {"weights": "equal", "steps": 100},
    "minmax-equal-prior0.1": {"weights": "equal", "prior": 0.1},
    "minmax-equal-prior1": {"weights": "equal", "prior": 1.0},
    "minmax-equal-prior1-100": {"weights": "equal", "prior": 1.0, "steps": 100},  # chosen
    "minmax-equal-prior3": {"weights": "equal", "prior": 3.0},
    "minmax-equal-prior10": {"weights": "equal", "prior": 10.0},
    "sigmoid": {"param": "sigmoid"},  # e anywhere in [0, 1]^10
    "hull": {"param": "hull"},  # e = min-max normalised convex mixture of the starts
}


def fold_predictor(fold: str, cache: Path, steps: int) -> MetaPredictor:
    path = cache / f"fold{fold}_{steps}.pt"
    if not path.is_file():
        devices = tuple(d for d in TRAIN_DEVICES if d not in FOLDS[fold])
        print(f"training fold {fold} predictor on {len(devices)} devices ({steps} steps) -> {path}", flush=True)
        model = train_predictor(latency_data(), TrainConfig(steps=steps, devices=devices))
        cache.mkdir(parents=True, exist_ok=True)
        save_predictor(model, path, metadata={"held_out": list(FOLDS[fold]), "steps": steps}, force=True)
    return load_predictor(path)[0]


def run_validate(args: argparse.Namespace) -> None:
    results: dict[tuple[str, int], list[float]] = {}
    steps = dict(zip(args.folds, args.train_steps + args.train_steps[-1:] * len(args.folds)))
    for fold in args.folds:
        model = fold_predictor(fold, Path(args.cache), steps[fold])
        kept = [d for d in TRAIN_DEVICES if d not in FOLDS[fold]]
        for name in FOLDS[fold]:
            true = nb201_tables.full_column("latency", name)
            ref = rho_all(model, registry.get(name).embedding, true)
            results.setdefault(("10 refs", 10), []).append(ref)
            line = [f"{name} (fold {fold}): 10 refs {ref:.3f}"]
            for k in args.ks:
                for variant in args.variants:
                    options = VARIANTS[variant]
                    rhos = []
                    tic = time.perf_counter()
                    for seed in range(args.draws):
                        idx = draw(k, 1000 + seed)  # other draws than `test`
                        starts = starting_embeddings(seed, registry, names=kept)
                        e = variant_fit(model, idx, true[idx], starts, **options)
                        rhos.append(rho_all(model, e, true))
                    results.setdefault((variant, k), []).append(float(np.mean(rhos)))
                    line.append(f"k={k} {variant} {np.mean(rhos):.3f} ({(time.perf_counter() - tic) / args.draws:.0f} s)")
            print("; ".join(line), flush=True)
    print("\nmean Spearman over the held-out training devices")
    print("| variant | " + " | ".join(f"k={k}" for k in args.ks) + " |")
    print("|---" * (len(args.ks) + 1) + "|")
    print(f"| 10 refs | {np.mean(results[('10 refs', 10)]):.3f} |" + " |" * (len(args.ks) - 1))
    for variant in args.variants:
        print(f"| {variant} | " + " | ".join(f"{np.mean(results[(variant, k)]):.3f}" for k in args.ks) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    test = sub.add_parser("test", help="the table on the 6 test devices")
    test.add_argument("--devices", nargs="+", default=list(TEST_DEVICES))
    test.add_argument("--predictor", default=None, help="checkpoint (default: the shipped one)")
    test.add_argument("--adapt", action="store_true", help="also fit + few-shot adaptation, and refs + k-shot")
    validate = sub.add_parser("validate", help="design variants on held-out training devices")
    validate.add_argument("--cache", default="fold_predictors", help="where the fold predictors are kept")
    validate.add_argument("--folds", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    validate.add_argument("--train-steps", type=int, nargs="+", default=[4000],
                          help="training steps of each fold's predictor (one value, or one per fold)")
    validate.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    for p in (test, validate):
        p.add_argument("--ks", nargs="+", type=int, default=[10, 20, 50])
        p.add_argument("--draws", type=int, default=5)
        p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.mode is None:
        args = parser.parse_args(["test", *__import__("sys").argv[1:]])
    if args.threads:
        torch.set_num_threads(args.threads)
    run_validate(args) if args.mode == "validate" else run_test(args)


if __name__ == "__main__":
    main()
