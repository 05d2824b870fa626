"""Real English text for training small GPT language models offline, as byte tokens.

Corpora come from Debian packages, so nothing is downloaded at run time and the text is the same on every machine
with the same package version:

* ``bible-kjv``: the King James Bible (public domain, about 4.3 MB of ASCII prose), dumped by the package's
  ``bible`` program from its compressed data file. Install with ``apt-get install bible-kjv``.
* ``fortunes``: the ``fortune`` cookie files (jokes, quotations, poems; about 2.6 MB of UTF-8 text, separated by
  ``%`` lines). Install with ``apt-get install fortunes``.

Elsewhere, pass ``data_dir``: a folder holding ``<name>.txt`` (any plain UTF-8 text; a Debian machine writes the
same ``bible-kjv`` text with ``bible -l 79 -p /usr/lib Gen1:1-Rev22:21``).

Text is tokenised into its UTF-8 bytes (vocabulary 256): there is no vocabulary to train, ship or download, every
string round-trips exactly, and a model's perplexity is comparable across corpora and runs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modnas.errors import ModnasError


@dataclass(frozen=True)
class Corpus:
    """A supported corpus: what it is and which Debian package provides it."""

    description: str
    package: str

    @property
    def install(self) -> str:
        """The command that installs the corpus on Debian or Ubuntu."""
        return f"apt-get install {self.package}"


CORPORA: dict[str, Corpus] = {
    "bible-kjv": Corpus("King James Bible, public domain English prose, about 4.3 MB", "bible-kjv"),
    "fortunes": Corpus("fortune cookie files: jokes, quotations and poems, about 2.6 MB", "fortunes"),
}
DEFAULT_CORPUS = "bible-kjv"

# Where the Debian packages put their files (module constants so that tests can point them elsewhere).
BIBLE_PROGRAM = "bible"
BIBLE_DATA_DIR = Path("/usr/lib")  # holds bible.data and bible.data.conc (package bible-kjv-text)
FORTUNES_DIR = Path("/usr/share/games/fortunes")
DPKG_INFO_DIR = Path("/var/lib/dpkg/info")
FORTUNES_PACKAGES = ("fortunes-min", "fortunes")
DUMP_TIMEOUT_S = 120.0

SPLITS = ("train", "val", "test")


def _not_installed(name: str) -> ModnasError:
    return ModnasError(
        f"corpus {name!r} is not installed: run '{CORPORA[name].install}' or pass --data-dir DIR holding {name}.txt"
    )


def _dump_bible() -> str:
    program = shutil.which(BIBLE_PROGRAM)
    if program is None or not (BIBLE_DATA_DIR / "bible.data").is_file():
        raise _not_installed("bible-kjv")
    # Pretty-printed layout (book and chapter headings, numbered verses) wrapped at a fixed 79 columns: the width
    # would otherwise follow $COLUMNS, and the data would be searched for in the current folder first.
    cmd = [program, "-l", "79", "-p", str(BIBLE_DATA_DIR), "Gen1:1-Rev22:21"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "COLUMNS": "80"}
    try:
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=DUMP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModnasError(
            f"could not dump corpus 'bible-kjv' with {program} ({type(exc).__name__}); "
            "reinstall it with 'apt-get install --reinstall bible-kjv'"
        ) from None
    if done.returncode != 0 or not done.stdout:
        raise ModnasError(
            f"{program} failed (exit status {done.returncode}) dumping corpus 'bible-kjv'; "
            "reinstall it with 'apt-get install --reinstall bible-kjv'"
        )
    # The dump opens with a blank line before the first heading.
    return done.stdout.decode("utf-8", errors="replace").lstrip("\n")


def _read_fortunes() -> str:
    # Only the files the two packages own, in name order: other packages (fortunes-bofh-excuses, ...) install
    # into the same folder and would otherwise change the text.
    names: set[str] = set()
    for package in FORTUNES_PACKAGES:
        listing = DPKG_INFO_DIR / f"{package}.list"
        if not listing.is_file():
            raise _not_installed("fortunes")
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            path = Path(line.strip())
            # the .dat files are binary indexes; the .u8 names are symlinks to the plain files
            if path.parent == FORTUNES_DIR and not path.suffix:
                names.add(path.name)
    parts = []
    for name in sorted(names):
        path = FORTUNES_DIR / name
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            raise _not_installed("fortunes") from None
        # every cookie ends with a '%' line, the last one of a file included
        parts.append(text if text.endswith("%\n") else text.rstrip("\n") + "\n%\n")
    if not parts:
        raise _not_installed("fortunes")
    return "".join(parts)


_SYSTEM_READERS: dict[str, Callable[[], str]] = {"bible-kjv": _dump_bible, "fortunes": _read_fortunes}


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: str | None) -> str:
    if data_dir is None:
        return _SYSTEM_READERS[name]()
    path = Path(data_dir) / f"{name}.txt"
    if not path.is_file():
        raise ModnasError(
            f"corpus {name!r}: no file {path}; put a plain-text copy there, "
            f"or run '{CORPORA[name].install}' and leave out --data-dir"
        )
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModnasError(f"{path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise ModnasError(f"{path} is not readable ({type(exc).__name__})") from None


def load_corpus(name: str = DEFAULT_CORPUS, data_dir: str | Path | None = None) -> str:
    """The full text of corpus ``name``, the same string on every call (cached in memory).

    Read from ``data_dir/<name>.txt`` when ``data_dir`` is given, otherwise from the installed Debian package.
    """
    if name not in CORPORA:
        raise ModnasError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")
    return _load_cached(name, None if data_dir is None else str(Path(data_dir).expanduser().resolve()))


class ByteTokenizer:
    """Text as its UTF-8 bytes: token ids 0..255."""

    vocab_size = 256

    def encode(self, text: str) -> Tensor:
        """The UTF-8 bytes of ``text`` as a 1-D int64 tensor."""
        raw = text.encode("utf-8")
        if not raw:
            return torch.empty(0, dtype=torch.long)
        # frombuffer avoids a Python list of millions of ints; the bytearray gives it a writable buffer
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.long)

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """The text of byte ids; a cut multi-byte character becomes U+FFFD."""
        values = ids.reshape(-1).tolist() if isinstance(ids, Tensor) else list(ids)
        try:
            raw = bytes(values)
        except (ValueError, TypeError):
            raise ModnasError("byte token ids must be integers in 0..255") from None
        return raw.decode("utf-8", errors="replace")


@dataclass
class TokenData:
    """A token sequence cut into contiguous train, validation and test pieces (1-D int64 tensors)."""

    train: Tensor
    val: Tensor
    test: Tensor

    @classmethod
    def from_text(
        cls,
        text: str,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        tokenizer: ByteTokenizer | None = None,
    ) -> TokenData:
        """Tokenise ``text`` and split it in order: train first, then validation, then test.

        Contiguous pieces (not random windows) keep the held-out text unseen in training, apart from the seams.
        """
        for label, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= fraction < 1.0:
                raise ModnasError(f"{label} must lie in [0, 1), got {fraction}")
        if val_fraction + test_fraction >= 1.0:
            raise ModnasError(
                f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}"
            )
        ids = (tokenizer or ByteTokenizer()).encode(text)
        n = len(ids)
        n_val, n_test = int(n * val_fraction), int(n * test_fraction)
        n_train = n - n_val - n_test
        return cls(ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :])

    def split(self, name: str) -> Tensor:
        """The tokens of split ``name`` (``train``, ``val`` or ``test``)."""
        if name not in SPLITS:
            raise ModnasError(f"unknown split {name!r}; choose one of: {', '.join(SPLITS)}")
        return getattr(self, name)

    def limit(self, n_tokens: int) -> TokenData:
        """A copy whose train split keeps only its first ``n_tokens`` tokens (validation and test unchanged)."""
        if n_tokens < 1:
            raise ModnasError(f"n_tokens must be a positive integer, got {n_tokens}")
        return dataclasses.replace(self, train=self.train[:n_tokens])

    def _check_length(self, split: str, block_size: int) -> Tensor:
        if block_size < 1:
            raise ModnasError(f"block_size must be a positive integer, got {block_size}")
        data = self.split(split)
        if len(data) < block_size + 1:
            raise ModnasError(
                f"the {split} split has {len(data)} tokens, too few for block_size {block_size} "
                f"(needs at least {block_size + 1})"
            )
        return data

    def batch(
        self, split: str, batch_size: int, block_size: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``batch_size`` random windows of ``split``: inputs ``x`` (B, T) and targets ``y``, ``x`` shifted by one.

        Start positions are drawn uniformly from ``generator``, so a seeded generator gives the same batches.
        """
        if batch_size < 1:
            raise ModnasError(f"batch_size must be a positive integer, got {batch_size}")
        data = self._check_length(split, block_size)
        starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
        index = starts[:, None] + torch.arange(block_size)
        return data[index], data[index + 1]

    def windows(self, split: str, block_size: int, max_windows: int | None = None) -> tuple[Tensor, Tensor]:
        """Consecutive non-overlapping windows of ``split`` in order, as ``x`` (N, T) and ``y`` (N, T).

        Window ``i`` covers tokens ``i*T .. (i+1)*T - 1`` with the next token as targets; the tail shorter than a
        window is dropped. ``max_windows`` keeps the first ones only.
        """
        data = self._check_length(split, block_size)
        n = (len(data) - 1) // block_size
        if max_windows is not None:
            if max_windows < 1:
                raise ModnasError(f"max_windows must be a positive integer, got {max_windows}")
            n = min(n, max_windows)
        x = data[: n * block_size].view(n, block_size)
        y = data[1 : n * block_size + 1].view(n, block_size)
        return x, y

    def iter_windows(
        self, split: str, block_size: int, batch_size: int, max_windows: int | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The windows of :meth:`windows` in batches of at most ``batch_size``."""
        if batch_size < 1:
            raise ModnasError(f"batch_size must be a positive integer, got {batch_size}")
        x, y = self.windows(split, block_size, max_windows)
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def load_text_data(
    name: str = DEFAULT_CORPUS,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
) -> TokenData:
    """Corpus ``name`` as byte tokens split into train, validation and test (see :meth:`TokenData.from_text`)."""
    return TokenData.from_text(load_corpus(name, data_dir), val_fraction, test_fraction)


def _model_device(model: nn.Module) -> torch.device:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return torch.device("cpu")


def perplexity(
    model: nn.Module,
    data: TokenData,
    split: str,
    block_size: int,
    batch_size: int = 32,
    max_windows: int | None = None,
    device: torch.device | str | None = None,
) -> float:
    """exp of the mean next-token cross-entropy of ``model(x) -> logits (B, T, V)`` over :meth:`TokenData.windows`.

    Runs in eval mode without gradients and puts every submodule back in the mode it was in. Inputs go to
    ``device``, by default the device of the model's first parameter or buffer (CPU when it has none).
    """
    target = torch.device(device) if device is not None else _model_device(model)
    modes = {module: module.training for module in model.modules()}
    total = 0.0
    count = 0
    model.eval()
    try:
        with torch.no_grad():
            for x, y in data.iter_windows(split, block_size, batch_size, max_windows):
                logits = model(x.to(target))
                # float32 for the loss: half-precision logits lose accuracy in the log-sum-exp
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]).float(), y.to(target).reshape(-1), reduction="sum"
                )
                total += float(loss)
                count += y.numel()
    finally:
        for module, training in modes.items():
            module.training = training
    return math.exp(total / count)


#: tokens per training window of a one-shot search or ``modnas train`` on a corpus (gpt-tiny's context)
WINDOW = 128
#: the fixed seed that shuffles a corpus's training windows (the search splits them in index order)
WINDOW_SEED = 0


@dataclass(frozen=True)
class TokenWindows:
    """A corpus as fixed-length windows, in the shape the one-shot loop reads datasets: ``train_x`` (N, T) tokens
    and ``train_y`` their successors, shuffled once by a fixed seed; ``val_x``/``val_y`` and ``test_x``/``test_y``
    the validation and test splits' non-overlapping windows in order; ``num_classes`` is the vocabulary."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    val_x: Tensor
    val_y: Tensor
    num_classes: int = 256

    @property
    def in_channels(self) -> int:
        return 1

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def is_text(self) -> bool:
        return True

    def limit_train(self, n: int | None) -> TokenWindows:
        """The first ``n`` (shuffled) training windows only; the test windows are kept."""
        if n is None or n >= len(self.train_y):
            return self
        if n < 2:
            raise ModnasError(f"a training subset needs at least 2 windows, got {n}")
        return dataclasses.replace(self, train_x=self.train_x[:n], train_y=self.train_y[:n])

    def resized(self, size: int | None) -> TokenWindows:
        if size is not None and size != self.image_size:
            raise ModnasError(f"{self.name} is text: its windows have {self.image_size} tokens, they cannot be resized")
        return self


def load_token_windows(name: str, data_dir: str | Path | None = None, window: int = WINDOW) -> TokenWindows:
    """Corpus ``name`` as :class:`TokenWindows` of ``window`` tokens (train windows shuffled by a fixed seed)."""
    data = load_text_data(name, data_dir)
    x, y = data.windows("train", window)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(WINDOW_SEED))
    test_x, test_y = data.windows("test", window)
    val_x, val_y = data.windows("val", window)
    return TokenWindows(name, x[order].contiguous(), y[order].contiguous(), test_x, test_y, val_x, val_y)
