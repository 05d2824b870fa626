"""Sub-command groups of the ``modnas`` CLI (each module defines a ``typer.Typer`` named ``app``)."""
