"""Search spaces. Each space implements :class:`modnas.spaces.base.SearchSpace`.

Nothing here imports torch at import time, so table and string lookups start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modnas.spaces.base import SearchSpace



def get_space(name: str) -> SearchSpace:
    """The search space of the problem called ``name`` (see :func:`modnas.problem.get_problem`)."""
    from modnas.problem import get_problem

    return get_problem(name).space


def __getattr__(name: str) -> Any:
    if name == "SearchSpace":
        from modnas.spaces.base import SearchSpace

        return SearchSpace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SearchSpace", "get_space"]
