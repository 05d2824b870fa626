"""Search spaces. Each space implements :class:`modnas.spaces.base.SearchSpace`.

Nothing here imports torch at import time, so table and string lookups start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modnas.errors import ModnasError

if TYPE_CHECKING:
    from modnas.spaces.base import SearchSpace

SPACES = ("nb201",)


def get_space(name: str) -> SearchSpace:
    """The search space registered under ``name``."""
    if name == "nb201":
        from modnas.spaces.nb201.space import NB201Space

        return NB201Space()
    raise ModnasError(f"unknown search space {name!r}; available: {', '.join(SPACES)}")


def __getattr__(name: str) -> Any:
    if name == "SearchSpace":
        from modnas.spaces.base import SearchSpace

        return SearchSpace
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SPACES", "SearchSpace", "get_space"]
