"""Byte tokenizer, contiguous splits, batching, perplexity and corpus loading of modnas.text."""

from __future__ import annotations

import itertools
import shutil

import pytest
import torch
from torch import nn

from modnas import text
from modnas.errors import ModnasError
from modnas.text import CORPORA, ByteTokenizer, TokenData, load_corpus, load_text_data, perplexity

HAVE_BIBLE = shutil.which(text.BIBLE_PROGRAM) is not None and (text.BIBLE_DATA_DIR / "bible.data").is_file()
HAVE_FORTUNES = all((text.DPKG_INFO_DIR / f"{p}.list").is_file() for p in text.FORTUNES_PACKAGES)


@pytest.fixture(autouse=True)
def fresh_corpus_cache():
    # the in-memory cache would otherwise carry texts (or the lack of them) across monkeypatched tests
    text._load_cached.cache_clear()
    yield
    text._load_cached.cache_clear()


def _data(n: int = 1000) -> TokenData:
    return TokenData(torch.arange(n) % 256, torch.arange(n, 2 * n) % 256, torch.arange(50) % 256)


class UniformModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape, 256)


class PeekingModel(nn.Module):
    """Puts a large logit on the byte that follows each input byte in the given sequence."""

    def __init__(self, successor: dict[int, int]) -> None:
        super().__init__()
        self.successor = successor
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 256)
        nxt = torch.tensor([[self.successor[int(t)] for t in row] for row in x])
        logits.scatter_(-1, nxt[..., None], 8.0)
        return logits


def test_tokenizer_round_trip_with_non_ascii():
    tok = ByteTokenizer()
    s = "In the beginning — naïve café, 日本語, emoji 🙂\n"
    ids = tok.encode(s)
    assert ids.dtype == torch.int64 and ids.ndim == 1
    assert len(ids) == len(s.encode("utf-8")) and int(ids.max()) < tok.vocab_size == 256
    assert tok.decode(ids) == s
    assert tok.decode(ids.tolist()) == s
    assert tok.encode("").shape == (0,)
    assert tok.decode(tok.encode("é")[:1]) == "\ufffd"  # a cut character is replaced, not an exception
    with pytest.raises(ModnasError, match="0..255"):
        tok.decode([300])


def test_split_sizes_are_deterministic_and_contiguous():
    s = "abcdefghij" * 100  # 1000 bytes
    data = TokenData.from_text(s, val_fraction=0.1, test_fraction=0.05)
    assert (len(data.train), len(data.val), len(data.test)) == (850, 100, 50)
    assert torch.equal(torch.cat([data.train, data.val, data.test]), ByteTokenizer().encode(s))
    again = TokenData.from_text(s, val_fraction=0.1, test_fraction=0.05)
    assert all(torch.equal(getattr(data, k), getattr(again, k)) for k in ("train", "val", "test"))
    with pytest.raises(ModnasError, match="val_fraction"):
        TokenData.from_text(s, val_fraction=0.6, test_fraction=0.5)


def test_limit_truncates_train_only():
    data = _data()
    small = data.limit(100)
    assert torch.equal(small.train, data.train[:100])
    assert small.val is data.val and small.test is data.test
    assert len(data.train) == 1000  # the original is untouched
    with pytest.raises(ModnasError):
        data.limit(0)


def test_batch_shapes_shift_and_generator_determinism():
    data = TokenData(torch.arange(500), torch.arange(100), torch.arange(100))
    x, y = data.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)  # targets continue the window in the source
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(4, 15, dtype=torch.long))  # contiguous windows
    x2, _ = data.batch("train", 4, 16, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    x3, y3 = data.batch("val", 64, 99, torch.Generator().manual_seed(1))  # the whole split fits exactly once
    assert torch.equal(x3[0], torch.arange(99)) and torch.equal(y3[0], torch.arange(1, 100))
    with pytest.raises(ModnasError, match="too few"):
        data.batch("val", 1, 100)
    with pytest.raises(ModnasError, match="unknown split"):
        data.batch("dev", 1, 4)


def test_windows_cover_the_split_in_order():
    data = _data(1001)
    x, y = data.windows("train", 10)
    assert x.shape == y.shape == (100, 10)
    assert torch.equal(x.reshape(-1), data.train[:1000])
    assert torch.equal(y.reshape(-1), data.train[1:1001])
    x5, _ = data.windows("train", 10, max_windows=5)
    assert torch.equal(x5, x[:5])
    batches = list(data.iter_windows("train", 10, batch_size=32))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([b[0] for b in batches]), x)


def test_perplexity_of_uniform_and_informed_models():
    data = TokenData.from_text("the quick brown fox jumps over the lazy dog. " * 40, 0.25, 0.0)
    uniform = perplexity(UniformModel(), data, "val", block_size=16, batch_size=3)
    assert abs(uniform - 256.0) < 1e-3
    # in the repeated sentence each byte but 'e', 'o', 'u', 'r', ' ' has one successor; the model knows them all
    seq = data.val.tolist()
    successor = dict(itertools.pairwise(seq))
    model = PeekingModel(successor)
    model.train()
    model.dropout.eval()
    ppl = perplexity(model, data, "val", block_size=16, batch_size=3, max_windows=4)
    assert 1.0 <= ppl < 20.0
    assert model.training and not model.dropout.training  # every submodule's mode is restored


def test_unknown_corpus_lists_known_ones():
    with pytest.raises(ModnasError) as err:
        load_corpus("shakespeare")
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in CORPORA)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_missing_corpus_names_the_apt_command(monkeypatch, tmp_path, name):
    monkeypatch.setattr(text, "BIBLE_PROGRAM", "modnas-no-such-program")
    monkeypatch.setattr(text, "DPKG_INFO_DIR", tmp_path / "no-dpkg")
    with pytest.raises(ModnasError) as err:
        load_corpus(name)
    message = str(err.value)
    assert f"apt-get install {CORPORA[name].package}" in message and f"{name}.txt" in message
    assert "\n" not in message
    with pytest.raises(ModnasError, match="apt-get install"):
        load_corpus(name, data_dir=tmp_path / "empty")


def test_data_dir_override(tmp_path):
    body = "Hello, wörld.\nA second line.\n"
    (tmp_path / "bible-kjv.txt").write_text(body, encoding="utf-8")
    assert load_corpus("bible-kjv", data_dir=tmp_path) == body
    assert load_corpus("bible-kjv", data_dir=str(tmp_path)) is load_corpus(
        "bible-kjv", data_dir=tmp_path
    )  # cached
    data = load_text_data("bible-kjv", data_dir=tmp_path, val_fraction=0.1, test_fraction=0.1)
    assert ByteTokenizer().decode(torch.cat([data.train, data.val, data.test])) == body
    (tmp_path / "fortunes.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ModnasError, match="not UTF-8"):
        load_corpus("fortunes", data_dir=tmp_path)


@pytest.mark.skipif(
    not HAVE_BIBLE, reason="Debian package bible-kjv not installed (apt-get install bible-kjv)"
)
def test_real_bible_kjv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "40")  # the dump must not depend on the terminal width
    corpus = load_corpus("bible-kjv")
    assert len(corpus.encode("utf-8")) > 1_000_000
    assert corpus.startswith("Genesis 1\n\n  1 In the beginning God created the heaven and the earth.\n")
    assert corpus.rstrip().endswith("The grace of our Lord Jesus Christ be with you all. Amen.")
    assert max(len(line) for line in corpus.splitlines()) <= 79
    data = load_text_data("bible-kjv")
    assert len(data.train) > 3_000_000 and len(data.val) == len(data.test) > 100_000


@pytest.mark.skipif(
    not HAVE_FORTUNES, reason="Debian package fortunes not installed (apt-get install fortunes)"
)
def test_real_fortunes():
    corpus = load_corpus("fortunes")
    assert len(corpus.encode("utf-8")) > 1_000_000
    assert corpus.endswith("%\n") and corpus.count("\n%\n") > 5000


def test_corpora_describe_their_install_command():
    for corpus in CORPORA.values():
        assert corpus.install.startswith("apt-get install ") and corpus.description
