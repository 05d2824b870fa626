"""Pareto fronts, quality indicators, preference grids and the shared protocol scorer."""

from modnas.evaluation.pareto import hypervolume, igd, igd_plus, nondominated_mask, pareto_front
from modnas.evaluation.preferences import (
    SCALARISATIONS,
    circle_rays,
    dirichlet,
    evaluation_preferences,
    parse_preference,
    scalarise,
    scalarised_argmin,
    simplex_grid,
    to_simplex,
    validate_preference,
)
from modnas.evaluation.scorer import Score, TrueFront, protocol, score, score_keys, true_front

__all__ = [
    "SCALARISATIONS",
    "Score",
    "TrueFront",
    "circle_rays",
    "dirichlet",
    "evaluation_preferences",
    "hypervolume",
    "igd",
    "igd_plus",
    "nondominated_mask",
    "pareto_front",
    "parse_preference",
    "protocol",
    "scalarise",
    "scalarised_argmin",
    "score",
    "score_keys",
    "simplex_grid",
    "to_simplex",
    "true_front",
    "validate_preference",
]
