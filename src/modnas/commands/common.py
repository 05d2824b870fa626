"""Shared pieces of the command line: consoles, JSON output, architecture files and one-line error handling."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modnas.errors import ModnasError, OutputError
from modnas.io import os_error_reason

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn :class:`ModnasError` into a one-line message on stderr and exit status 2; a failed write
    (:class:`OutputError`, or an ``OSError`` no command foresaw) is one line too, with exit status 1, and Ctrl-C
    prints one line (an :class:`~modnas.errors.Interrupted`'s note of what was saved) with exit status 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OutputError as exc:
            _print_error(str(exc))
            raise typer.Exit(1) from None
        except ModnasError as exc:
            _print_error(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:
            _print_error(os_error_reason(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:  # Ctrl-C: one line (what was saved, when the command says), no traceback
            err_console.print(escape(str(exc) or "interrupted"), highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (a batch scheduler's time limit, ``kill``, torchrun stopping its workers) stops the
    work as Ctrl-C does: the run records that it was interrupted and says how to continue, instead of dying
    mid-write. Only the main thread can install a handler; elsewhere the block runs unchanged."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("terminated")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_error(message: str) -> None:
    # escaped: messages hold brackets that are not markup (pip extras, NB201 strings, paths, "[nan, 1.]")
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_arch_table(
    title: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[str]],
    arch_column: int = 0,
    key_column: int | None = None,
    caption: str | None = None,
) -> None:
    """Print a table one of whose columns holds architecture strings, which are never wrapped or cut.

    ``columns`` are ``(header, justify)``. When the table fits the console with the architecture column whole, it
    is printed as is; otherwise (a narrow terminal, or a pipe, which rich treats as 80 columns) the table is printed
    without that column and each architecture follows on a line of its own, keyed by ``key_column``'s value (or
    by a ``#`` row number).
    """
    whole = _narrowest(columns, rows, arch_column) <= console.width
    if not whole:
        if key_column is None:
            columns = [("#", "right"), *columns]
            rows = [[str(k), *row] for k, row in enumerate(rows, start=1)]
            arch_column, key_column = arch_column + 1, 0
        keys = [row[key_column] for row in rows]
    kept = [k for k in range(len(columns)) if whole or k != arch_column]
    widths = _fitted_widths(columns, rows, kept, arch_column if whole else None)
    table = Table(title=title, caption=caption)
    for k, width in zip(kept, widths):
        header, justify = columns[k]
        table.add_column(header, justify=justify, width=width, no_wrap=whole and k == arch_column)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*(row[k] for k in kept))
    needed = sum(w or 0 for w in widths) + 3 * len(kept) + 1
    out = console
    if needed > console.width:  # narrower than even the words: let the terminal wrap the lines, cut nothing
        out = Console(
            width=needed, file=console.file, force_terminal=console.is_terminal, color_system=console.color_system
        )  # type: ignore[arg-type]
    out.print(table)
    if whole:
        return
    width = max(len(k) for k in keys) if keys else 0
    console.print(f"{columns[key_column][0]:>{width}}  {columns[arch_column][0]}", highlight=False, soft_wrap=True,
                  markup=False)  # fmt: skip
    for key, row in zip(keys, rows):
        console.print(f"{key:>{width}}  {row[arch_column]}", highlight=False, soft_wrap=True, markup=False)


def _word_widths(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], k: int, whole: bool
) -> tuple[int, int]:
    """The narrowest (a column wrapped at its words, or ``whole``) and the natural width of column ``k``."""
    cells = [columns[k][0], *(row[k] for row in rows)]
    natural = max(len(cell) for cell in cells)
    if whole:
        return natural, natural
    return max((len(word) for cell in cells for word in cell.split()), default=1), natural


def _narrowest(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], arch_column: int) -> int:
    """Width of the table with the architecture column whole and every other column wrapped at its words."""
    widths = [_word_widths(columns, rows, k, k == arch_column)[0] for k in range(len(columns))]
    return sum(w + 2 for w in widths) + len(widths) + 1  # one space of padding each side, and the borders


def _fitted_widths(
    columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]], kept: list[int], whole: int | None
) -> list[int | None]:
    """Column widths that fit the console without cutting a word (rich alone squeezes a column below its longest
    word and cuts it with "…"); ``None`` each when the table fits at its natural width."""
    ranges = [_word_widths(columns, rows, k, k == whole) for k in kept]
    available = console.width - 3 * len(kept) - 1  # padding and borders
    if sum(natural for _, natural in ranges) <= available:
        return [None] * len(kept)
    widths = [low for low, _ in ranges]
    spare = available - sum(widths)
    slack = [natural - low for low, natural in ranges]
    if spare > 0 and sum(slack):  # share the room left by the columns' slack, never past their natural width
        widths = [low + min(extra, spare * extra // sum(slack)) for low, extra in zip(widths, slack)]
    return widths  # type: ignore[return-value]


class FlagsWithoutType(typer.core.TyperGroup):
    """A command group whose help shows no ``<bool>`` after plain flags such as ``--json`` or ``--help``.

    Typer prints every option's type; a flag takes no value, so its metavar is set empty (as each command is
    looked up, which also covers the ``--help`` option typer adds to each command).
    """

    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _untyped_flags(command.get_params(ctx))
        return command


def _untyped_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


def read_arch_file_checked(path: str | Path, space: Any = None) -> list[str]:
    """Read an architecture file and validate every line in ``space`` (default NB201), naming the first bad one."""
    from modnas.io import read_arch_file
    from modnas.problem import get_problem

    parse = (space or get_problem("nb201").space).parse
    archs = read_arch_file(path)
    for line_no, arch in enumerate(archs, start=1):
        try:
            parse(arch)
        except ModnasError as exc:
            raise ModnasError(f"{path}: entry {line_no}: {exc}") from None
    return archs


def print_json(data: Any) -> None:
    """Print JSON to stdout (strict: NaN is not valid JSON, so callers convert it to null first)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")


class _StderrHandler(logging.Handler):
    """Writes log records to the ``sys.stderr`` of the moment (a live progress bar redirects it above itself)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a command
            self.handleError(record)


class _Formatter(logging.Formatter):
    """Plain message for INFO; ``warning: ...`` / ``error: ...`` above it."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {message}"


def configure_logging(level: int = logging.WARNING) -> None:
    """Send the library's ``modnas`` log records to stderr as plain lines, from ``level`` up (idempotent)."""
    logger = logging.getLogger("modnas")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        logger.addHandler(handler)
    logger.setLevel(level)


@contextlib.contextmanager
def log_level(name: str, level: int) -> Iterator[None]:
    """Set logger ``name`` to ``level`` for the duration of a ``with`` block."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def plain_output() -> bool:
    """Whether stdout or stderr is not a terminal (CI, nohup, a pipe): then no live progress bar is seen."""
    return not (sys.stdout.isatty() and sys.stderr.isatty())
