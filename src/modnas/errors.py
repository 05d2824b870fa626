"""User-facing errors.

Every problem caused by what the user passed in (a malformed architecture string, an unknown device, a bad
preference vector, ...) raises a :class:`ModnasError` with a one-line message that names the bad value. The CLI
prints that line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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


def validation_error_line(err: ValidationError, subject: str) -> str:
    """The first problem of a pydantic ``ValidationError`` as one line naming where it is.

    ``subject`` names what was validated (``config``, ``protocol``, ...). The forms are ``unknown SUBJECT key
    'a.b'``, ``SUBJECT key 'a.b' is missing``, ``SUBJECT a.b: MESSAGE (got VALUE)`` and, for a problem of the
    whole mapping, ``SUBJECT: MESSAGE``. Location parts that are not identifiers (list positions, mapping keys
    such as architecture strings) are written as ``[...]``; a :class:`ModnasError` raised inside a validator
    already names its value and is returned as it is.
    """
    first = err.errors()[0]
    original = (first.get("ctx") or {}).get("error")
    if isinstance(original, ModnasError):
        return str(original)
    where = ""
    for part in first.get("loc", ()):
        if isinstance(part, str) and part.isidentifier():
            where += f".{part}" if where else part
        else:
            where += f"[{part!r}]"
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown {subject} key {where!r}"
    if kind == "missing":
        return f"{subject} key {where!r} is missing"
    message = " ".join(str(first.get("msg", "invalid value")).removeprefix("Value error, ").split())
    if not where:
        return f"{subject}: {message}"
    value = first.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{subject} {where}: {message}{shown}"
