"""Tokenizers (byte-level, or a byte-level BPE trained here) and encoded token caches.

The BPE is trained with Hugging Face ``tokenizers`` on the *training* part of the corpus only (the
held-out text must not shape the vocabulary it is scored with), then cached as JSON under
``cache_dir/tokenizers``, keyed by the corpus hash, the split and the vocabulary size. The encoded
train/valid token arrays are cached beside it (``cache_dir/tokens``), so that every worker process
loads one ``.npz`` instead of encoding 4 MB of text again.

Documents are encoded one by one and concatenated, so no merge spans two books.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from lts.errors import LtsError
from lts.text.corpus import Corpus, Split, load_corpus

if TYPE_CHECKING:  # numpy is imported where arrays are made: `lts --help` reads DEFAULT_VOCAB from here
    import numpy as np

KINDS = ("bpe", "byte")
DEFAULT_VOCAB = 2048


@dataclass(frozen=True)
class TokenizerSpec:
    kind: str = "bpe"
    vocab_size: int = DEFAULT_VOCAB  # requested; a small corpus may give fewer BPE tokens

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LtsError(f"tokenizer must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "bpe" and not 257 <= self.vocab_size <= 1_000_000:
            raise LtsError(f"BPE vocabulary size must lie between 257 and 1000000, got {self.vocab_size}")


@dataclass(frozen=True)
class TokenData:
    """A corpus encoded once: the train and held-out token streams, and how they were made."""

    train: np.ndarray
    valid: np.ndarray
    vocab_size: int
    info: dict[str, Any]

    def save(self, path: Path) -> None:
        import numpy as np

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, train=self.train, valid=self.valid, vocab_size=np.array(self.vocab_size),
                 info=np.array(json.dumps(self.info, sort_keys=True)))
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    @classmethod
    def load(cls, path: str | Path) -> "TokenData":
        import numpy as np

        with np.load(path) as z:
            return cls(train=z["train"], valid=z["valid"], vocab_size=int(z["vocab_size"]),
                       info=json.loads(str(z["info"])))


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_bpe(parts: list[Split], vocab_size: int, dest: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        # every byte is in the vocabulary, so any text (other corpora, odd bytes) still encodes
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator((p.train for p in parts), trainer=trainer, length=len(parts))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, dest)


def _encoder(spec: TokenizerSpec, path: Path | None) -> tuple[Callable[[str], list[int]], int]:
    if spec.kind == "byte":
        return (lambda text: list(text.encode("utf-8"))), 256
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return (lambda text: tok.encode(text).ids), tok.get_vocab_size()


def _encode(encode: Callable[[str], list[int]], texts: list[str], vocab: int) -> np.ndarray:
    import numpy as np

    dtype = np.uint16 if vocab <= 65536 else np.int32
    ids = [np.asarray(encode(t), dtype=dtype) for t in texts if t]
    return np.concatenate(ids) if ids else np.zeros(0, dtype=dtype)


def prepare_tokens(
    corpus: Corpus,
    spec: TokenizerSpec,
    cache_dir: str | Path,
    valid_fraction: float,
) -> TokenData:
    """Train (or reuse) the tokenizer and encode the corpus's split (or reuse the cached arrays)."""
    cache = Path(cache_dir)
    parts = corpus.split(valid_fraction)
    key = f"{corpus.sha256[:16]}-v{valid_fraction:g}"
    tok_path: Path | None = None
    if spec.kind == "bpe":
        tok_path = cache / "tokenizers" / f"{key}-bpe{spec.vocab_size}.json"
        if not tok_path.is_file():
            _train_bpe(parts, spec.vocab_size, tok_path)
        tok_sha = _sha256_file(tok_path)
    else:
        tok_sha = "byte"
    tokens_path = cache / "tokens" / f"{key}-{spec.kind}{spec.vocab_size}-{tok_sha[:12]}.npz"
    if tokens_path.is_file():
        try:
            return TokenData.load(tokens_path)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    encode, vocab = _encoder(spec, tok_path)
    train = _encode(encode, [p.train for p in parts], vocab)
    valid = _encode(encode, [p.valid for p in parts], vocab)
    if len(train) < 2 or len(valid) < 2:
        raise LtsError(f"corpus {corpus.source!r} is too small to split into train and valid text")
    info = {
        **asdict(spec),
        "vocab_size": vocab,
        "requested_vocab_size": spec.vocab_size,
        "library": "tokenizers ByteLevel BPE" if spec.kind == "bpe" else "utf-8 bytes",
        "sha256": tok_sha,
        "path": str(tok_path) if tok_path else None,
        "trained_on": "train split only",
        "train_tokens": int(len(train)),
        "valid_tokens": int(len(valid)),
        "bytes_per_token": round(corpus.n_bytes / max(1, len(train) + len(valid)), 3),
        "cache": str(tokens_path),
    }
    data = TokenData(train=train, valid=valid, vocab_size=vocab, info=info)
    data.save(tokens_path)
    return data


def token_data(validation: Mapping[str, Any]) -> tuple[TokenData, str]:
    """A validation's encoded corpus, and its cache path; rebuilt (and checked) when the cache is gone.

    ``validation`` is a ``validation_runs`` row (``validation_id``, ``tokenizer_json``,
    ``corpus_json``): the tokenizer and corpus records the run wrote when it was created.
    """
    tok = json.loads(validation["tokenizer_json"])
    path = Path(tok["cache"])
    if path.is_file():
        return TokenData.load(path), str(path)
    corpus_info = json.loads(validation["corpus_json"])
    source = corpus_info["source"]
    corpus = load_corpus(None if source.startswith("builtin:") else source)
    if corpus.sha256 != corpus_info["sha256"]:
        raise LtsError(f"corpus {source!r} changed since validation {validation['validation_id']} was created")
    spec = TokenizerSpec(tok["kind"], tok["requested_vocab_size"])
    data = prepare_tokens(corpus, spec, path.parent.parent, corpus_info["valid_fraction"])
    if data.info["sha256"] != tok["sha256"]:
        raise LtsError(f"the rebuilt tokenizer differs from validation {validation['validation_id']}'s; "
                       f"restore {tok.get('path')}")
    return data, data.info["cache"]
