"""The batch of corpus tokens the data-dependent proxies read: deterministic, from a seed.

Two sources, behind one function each:

* :func:`corpus_batch` -- UTF-8 *bytes* of a text corpus (ids 0..255, inside every lts vocabulary of
  256 or more), read through :func:`lts.text.corpus.load_corpus` (the shipped Austen novels by
  default, or any file/folder).
* :func:`validation_batch` -- the training token stream of a validation run (its own BPE ids, which
  fit its architectures' vocabulary), through :func:`lts.text.tokenizer.token_data`; ``None`` when
  that is unavailable, so the caller can fall back to bytes.

At initialisation a token id only selects a random embedding row, so the byte ids carry what the
proxies can use of the data (its repetition structure), whatever tokenizer trained the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from lts.errors import LtsError
from lts.text.corpus import load_corpus
from lts.text.tokenizer import token_data


@dataclass(frozen=True)
class Batch:
    tokens: torch.Tensor  # (batch, seq_len + 1) int64
    source: str  # where the tokens came from, for the report


def stream_batch(stream: np.ndarray, batch: int, seq_len: int, seed: int) -> torch.Tensor:
    """``batch`` windows of ``seq_len + 1`` tokens at seeded offsets (sorted, so the order is stable)."""
    length = seq_len + 1
    if len(stream) < length:
        raise LtsError(f"the token stream has {len(stream)} tokens, fewer than one window of {length}")
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.integers(0, len(stream) - length + 1, size=batch))
    return torch.from_numpy(np.stack([np.asarray(stream[s : s + length], dtype=np.int64) for s in starts]))


def corpus_texts(corpus: str | Path | None = None) -> tuple[list[str], str]:
    """The documents of ``corpus`` (``None``: the shipped corpus) and a label, as ``load_corpus`` reads them."""
    c = load_corpus(corpus)
    return [d.text for d in c.documents], c.source


def corpus_batch(batch: int = 16, seq_len: int = 32, seed: int = 0, corpus: str | Path | None = None) -> Batch:
    """A byte-level batch from a text corpus; documents are joined in sorted order."""
    texts, source = corpus_texts(corpus)
    stream = np.frombuffer("\n".join(texts).encode("utf-8"), dtype=np.uint8)
    return Batch(stream_batch(stream, batch, seq_len, seed), f"bytes of {source}")


def validation_batch(validation: Mapping[str, Any], batch: int, seq_len: int, seed: int) -> Batch | None:
    """A batch from a validation run's own training tokens, or ``None`` when they cannot be had."""
    try:
        data, path = token_data(validation)
    except Exception:  # noqa: BLE001 -- a missing or changed corpus, a damaged cache: bytes will do
        return None
    if len(data.train) < seq_len + 1:
        return None
    return Batch(stream_batch(data.train, batch, seq_len, seed), f"train tokens of {path}")


def fit_to_vocab(tokens: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Ids folded into ``[0, vocab_size)`` (only a vocabulary smaller than the source's needs it)."""
    return tokens if int(tokens.max()) < vocab_size else tokens % vocab_size
