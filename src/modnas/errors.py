"""User-facing errors.

Every problem caused by what the user passed in (a malformed architecture string, an unknown device, a bad
preference vector, ...) raises a :class:`ModnasError` with a one-line message that names the bad value. The CLI
prints that line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class ModnasError(ValueError):
    """A problem with the user's input, reported as one line."""


class UnknownDeviceError(ModnasError, KeyError):
    """A device name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class OutputError(ModnasError):
    """A file could not be written (read-only folder, full disk); the message says what was kept and where.

    The CLI exits with status 1 for it: the input was fine, the machine refused the write.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during long work, carrying one line on what was saved and how to go on (still a KeyboardInterrupt)."""
