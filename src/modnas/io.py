"""Small file helpers shared by the CLI and the run directories: atomic writes and architecture lists."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modnas.errors import ModnasError


def _umask_mode() -> int:
    """Permissions a plain ``open()`` would give (mkstemp's temporary files are private, 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_replace(tmp: str | Path, target: str | Path) -> None:
    """Give ``tmp`` normal file permissions and rename it over ``target`` (atomic on POSIX)."""
    os.chmod(tmp, _umask_mode())
    os.replace(tmp, target)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename, so readers never see a partial file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        atomic_replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename: a killed process never leaves half a checkpoint."""
    import torch

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch reports a failed write (a full disk) as a RuntimeError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OSError(f"torch.save could not write {target} ({first})") from exc
        atomic_replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def os_error_reason(exc: OSError) -> str:
    """The short reason of an OS error (``No space left on device``), naming the file when it does."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{reason}: {exc.filename}" if exc.filename else reason


def check_writable(target: str | Path, what: str, directory: bool = False) -> Path:
    """Fail fast, before any long work, when ``target`` (a file, or with ``directory`` a folder) cannot be written.

    The nearest existing folder on the way to ``target`` is probed with a temporary file (permission bits alone
    say nothing for root, and nothing about read-only mounts); a path that runs through a regular file is refused.
    Returns ``target``.
    """
    path = Path(target)
    probe = path if directory else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ModnasError(f"cannot write {what} {str(path)!r}: {str(probe)!r} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".modnas-write-check.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise ModnasError(f"cannot write {what} {str(path)!r}: {os_error_reason(exc)}") from None
    return path


def rescue_text(text: str, name: str) -> Path | None:
    """Keep ``text`` in a new file of the system's temporary folder after a failed write; ``None`` if that fails too."""
    stem, dot, suffix = name.rpartition(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"modnas-{stem or name}-", suffix=f".{suffix}" if dot else "")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError:
        return None
    return Path(tmp)


def read_csv_rows(path: str | Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV file that must have ``columns``; unreadable files and missing columns are one-line errors."""
    text = read_user_text(path, "file")
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or any(c not in reader.fieldnames for c in columns):
        raise ModnasError(f"{str(path)!r} lacks the columns {', '.join(columns)}")
    return list(reader)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_user_text(path: str | Path, what: str) -> str:
    """Read a UTF-8 text file the user named; a missing or unreadable file is a one-line error naming ``what``."""
    file = Path(path)
    if file.is_dir():
        raise ModnasError(f"{what} {str(file)!r} is a directory; give a file")
    if not file.is_file():
        raise ModnasError(f"{what} {str(file)!r} does not exist")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModnasError(f"cannot read {what} {str(file)!r}: {exc}") from None


def read_arch_file(path: str | Path) -> list[str]:
    """Read architecture strings: one per line, or a CSV with an ``arch_str`` column (blank lines and ``#`` skipped)."""
    file = Path(path)
    text = read_user_text(file, "architecture file")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ModnasError(f"architecture file {str(file)!r} holds no architectures")
    header = lines[0]
    if "," in header and not header.startswith("|"):
        rows = list(csv.DictReader(lines))
        if not rows or "arch_str" not in rows[0]:
            raise ModnasError(f"CSV file {str(file)!r} needs an 'arch_str' column")
        return [row["arch_str"].strip() for row in rows]
    return lines


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (or accept an empty one); refuse anything that already holds files or cannot be written."""
    path = Path(out_dir)
    if path.exists():
        if not path.is_dir():
            raise ModnasError(f"output path {str(path)!r} exists and is not a directory")
        if any(path.iterdir()):
            raise ModnasError(f"output directory {str(path)!r} is not empty; choose a new --out")
    check_writable(path, "output directory", directory=True)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModnasError(f"cannot create output directory {str(path)!r}: {os_error_reason(exc)}") from None
    return path


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A user's YAML file holding a mapping (empty file: ``{}``); anything else is a one-line error naming ``what``."""
    import yaml

    text = read_user_text(path, what)
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ModnasError(f"{what} {str(path)!r} is not valid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ModnasError(f"{what} {str(path)!r} must hold a mapping of keys to values")
    return loaded


def csv_text(fields: Sequence[str], rows: Sequence[Mapping[str, Any]], digits: int | None = None) -> str:
    """Rows as CSV text with the header ``fields`` (other keys ignored); None and NaN as empty cells; floats with
    ``digits`` significant digits, or in full (``str``) when ``digits`` is None."""
    import io
    import math

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        cells = {}
        for key in fields:
            value = row.get(key)
            if value is None or (digits is not None and isinstance(value, float) and math.isnan(value)):
                value = ""
            elif digits is not None and isinstance(value, float):
                value = f"{value:.{digits}g}"
            cells[key] = value
        writer.writerow(cells)
    return buffer.getvalue()
