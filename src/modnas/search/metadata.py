"""``metadata.json``: what made a run directory (software, command, machine, times), for reproducing it.

Written atomically when a run starts, updated after every epoch and when it ends; a resumption appends an entry
to ``resumed`` and leaves the first start's record as it was. Keys::

    modnas_version, git_commit, git_dirty, command_line, cwd, start_time, last_update, end_time, status,
    host {cpu_model, cpu_cores, usable_cores, torch_threads, gpu, gpu_count, platform},
    versions {python, torch, numpy}, seed, world_size, kind, resumed [...]

Times are ISO 8601 with the UTC offset; ``git_commit`` is that of the modnas source tree when it is a git
checkout (``None`` for an installed wheel). ``status`` is ``running``, ``complete``, ``interrupted`` (Ctrl-C or
SIGTERM during a search) or ``failed`` (an error stopped it); a run killed outright (SIGKILL, a power cut) stays
``running`` with ``end_time`` ``None``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from modnas.io import atomic_write_json

logger = logging.getLogger(__name__)

FILE_NAME = "metadata.json"


def now() -> str:
    """The local time, ISO 8601 with its UTC offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout modnas is imported from, or ``(None, None)``."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("no git commit for %s: %s", source, exc)
        return None, None
    return (commit or None), bool(status.strip())


def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo; elsewhere what :func:`platform.processor` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def host_info() -> dict[str, Any]:
    """CPU model, cores (all and usable by this process), torch threads, GPU and platform."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if gpus else None,
        "gpu_count": gpus,
        "platform": platform.platform(),
    }


def world_size() -> int:
    """Processes taking part: torch.distributed's world size when initialised, else ``$WORLD_SIZE`` or 1."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def collect(seed: int | None, kind: str) -> dict[str, Any]:
    """A fresh record for a run starting now (``kind``: e.g. ``search/benchmark`` or ``train``)."""
    import numpy as np
    import torch

    from modnas import __version__

    commit, dirty = git_state()
    started = now()
    return {
        "modnas_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "command_line": shlex.join(sys.argv),
        "cwd": os.getcwd(),
        "start_time": started,
        "last_update": started,
        "end_time": None,
        "status": "running",
        "host": host_info(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "seed": seed,
        "world_size": world_size(),
        "kind": kind,
        "resumed": [],
    }


class RunMetadata:
    """Keeps a run directory's ``metadata.json`` current: :meth:`start`, then :meth:`update` and :meth:`finish`."""

    def __init__(self, run_dir: str | Path, seed: int | None, kind: str, resume: bool = False) -> None:
        self.path = Path(run_dir) / FILE_NAME
        fresh = collect(seed, kind)
        previous = self._read() if resume else None
        if previous is None:
            self.data = fresh
            self._entry = self.data
        else:
            # the first start's record stays; this resumption gets its own entry
            self.data = previous
            self._entry = {
                k: fresh[k]
                for k in ("modnas_version", "git_commit", "git_dirty", "command_line", "cwd", "start_time",
                          "last_update", "end_time", "host", "versions", "world_size")
            }
            self.data.setdefault("resumed", []).append(self._entry)
            self.data["status"] = "running"
            self.data["end_time"] = None
        self._write()

    def _read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a run from before metadata.json, or a damaged file: start a new record
        return data if isinstance(data, dict) else None

    def _write(self) -> None:
        atomic_write_json(self.path, self.data)

    def update(self, **fields: Any) -> None:
        """Record progress (``last_update`` and any ``fields``, e.g. ``epoch``)."""
        stamp = now()
        self._entry["last_update"] = stamp
        self.data["last_update"] = stamp
        self.data.update(fields)
        self._write()

    def finish(self, status: str = "complete") -> None:
        """Record the end time and final status."""
        stamp = now()
        self._entry["end_time"] = self._entry["last_update"] = stamp
        self.data.update(end_time=stamp, last_update=stamp, status=status)
        self._write()


__all__ = ["FILE_NAME", "RunMetadata", "collect", "cpu_model", "git_state", "host_info", "world_size"]
