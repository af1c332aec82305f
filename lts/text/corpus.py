"""The text a validation run trains on: the shipped Austen novels, or any file or folder the user names.

A corpus is a list of documents (one per file). The train/valid split is made per document and is
fixed by one number, ``valid_fraction``: the last part of every document (cut at a line break) is
held out. Holding out the end of each book, rather than whole books, keeps the validation text in
the same style mix as the training text, and the split never depends on a random draw.

The corpus hash covers the documents' names and bytes, so a changed file gives another tokenizer
cache entry and a validation run records exactly which text it used.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lts.errors import LtsError

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "data" / "corpus"
BUILTIN_NAME = "austen"
TEXT_SUFFIXES = (".txt", ".txt.gz", ".tokens", ".md")
# Files that describe a corpus folder rather than belong to it (the shipped one has a README).
_NOT_TEXT = ("readme", "license", "licence", "notice", "copying")
DEFAULT_VALID_FRACTION = 0.1


@dataclass(frozen=True)
class Document:
    name: str
    text: str


@dataclass(frozen=True)
class Split:
    """One document's train and held-out parts."""

    name: str
    train: str
    valid: str


@dataclass(frozen=True)
class Corpus:
    source: str
    documents: tuple[Document, ...]

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for d in self.documents:
            data = d.text.encode("utf-8")
            h.update(f"{d.name}\0{len(data)}\0".encode())
            h.update(data)
        return h.hexdigest()

    @property
    def n_bytes(self) -> int:
        return sum(len(d.text.encode("utf-8")) for d in self.documents)

    def split(self, valid_fraction: float = DEFAULT_VALID_FRACTION) -> list[Split]:
        return [split_document(d, valid_fraction) for d in self.documents]

    def describe(self, valid_fraction: float = DEFAULT_VALID_FRACTION) -> dict[str, Any]:
        """What a validation run records about its text (JSON-ready)."""
        parts = self.split(valid_fraction)
        return {
            "source": self.source,
            "sha256": self.sha256,
            "bytes": self.n_bytes,
            "valid_fraction": valid_fraction,
            "split": "last valid_fraction of every document, cut at a line break",
            "documents": [{"name": p.name, "train_chars": len(p.train), "valid_chars": len(p.valid)} for p in parts],
        }


def split_document(doc: Document, valid_fraction: float) -> Split:
    """Hold out the last ``valid_fraction`` of ``doc``, moved back to the nearest line start."""
    if not 0.0 < valid_fraction < 1.0:
        raise LtsError(f"valid fraction must lie between 0 and 1, got {valid_fraction}")
    text = doc.text
    cut = int(len(text) * (1.0 - valid_fraction))
    line_start = text.rfind("\n", 0, cut)
    # A document with no line break before the cut (one long line) is cut mid-line instead.
    if line_start > 0:
        cut = line_start + 1
    return Split(doc.name, text[:cut], text[cut:])


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise LtsError(f"{path}: cannot read ({exc})") from None
    # Undecodable bytes are replaced rather than refused: one stray byte should not stop a run.
    return raw.decode("utf-8", errors="replace")


def _is_text_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and name.endswith(TEXT_SUFFIXES) and not name.startswith(_NOT_TEXT)


def load_corpus(path: str | Path | None = None) -> Corpus:
    """The shipped Austen corpus (``path=None``), one text file, or every text file under a folder.

    A folder contributes its ``*.txt``, ``*.txt.gz``, ``*.tokens`` and ``*.md`` files, recursively,
    in sorted order, skipping README/LICENSE/NOTICE files. Refuses a missing path and a corpus with
    no text (one line each, for the CLI).
    """
    if path is None or str(path) == BUILTIN_NAME:
        files = sorted(BUILTIN_DIR.glob("*.txt.gz"))
        if not files:
            raise LtsError(f"{BUILTIN_DIR}: the shipped corpus is missing (reinstall lts)")
        source, root = f"builtin:{BUILTIN_NAME}", BUILTIN_DIR
    else:
        p = Path(path).expanduser()
        if not p.exists():
            raise LtsError(f"corpus {str(path)!r}: no such file or folder")
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if _is_text_file(f))
            if not files:
                raise LtsError(f"corpus {str(path)!r}: no text files (*.txt, *.txt.gz, *.tokens, *.md) in the folder")
            root = p
        else:
            files, root = [p], p.parent
        source = str(p.resolve())
    docs = tuple(Document(str(f.relative_to(root)), _read_text(f)) for f in files)
    docs = tuple(d for d in docs if d.text.strip())
    if not docs:
        raise LtsError(f"corpus {source!r} is empty (no text to train on)")
    return Corpus(source=source, documents=docs)
