"""modnas: multi-objective, hardware-aware differentiable neural architecture search."""

from modnas.errors import ModnasError

__version__ = "0.2.0.dev0"
__all__ = ["ModnasError", "__version__"]
