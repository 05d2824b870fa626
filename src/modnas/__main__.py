"""``python -m modnas``: the same command line as the ``modnas`` script."""

from modnas.cli import app

app(prog_name="modnas")
