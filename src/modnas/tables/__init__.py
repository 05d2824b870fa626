"""Bundled tabular benchmark data (the ground truth every method is scored against)."""

from modnas.tables.nb201 import NB201Tables, nb201_tables

__all__ = ["NB201Tables", "nb201_tables"]
