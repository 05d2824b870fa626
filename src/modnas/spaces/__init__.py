"""Search spaces. Each space implements :class:`modnas.spaces.base.SearchSpace`."""

from modnas.spaces.base import SearchSpace


def get_space(name: str) -> SearchSpace:
    """The search space registered under ``name``."""
    from modnas.errors import ModnasError

    if name == "nb201":
        from modnas.spaces.nb201 import NB201Space

        return NB201Space()
    raise ModnasError(f"unknown search space {name!r}; available: nb201")


__all__ = ["SearchSpace", "get_space"]
