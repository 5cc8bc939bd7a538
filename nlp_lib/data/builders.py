"""The data builders: every function a ``conf/data/*.yaml`` names as its ``_target_``.

Each reads one kind of source and returns a ready LightningDataModule, every knob a plain keyword
argument; the DataModule's own options pass through ``**kwargs``. They are the only functions a
config may name without being trusted (:data:`nlp_lib.trust.FACTORIES`; ``conf/data/text.yaml``
names the class :class:`~nlp_lib.data.TextDataModule` itself).

* trees (:class:`~nlp_lib.data.tree_datamodule.TreeDataModule`): :func:`ptb_tree_data` (PTB-style
  files such as SST), :func:`listops_data` (generated or read), :func:`conllu_tree_data`;
  their sentences, for sequence models (:class:`~nlp_lib.data.tree_datamodule.SentenceDataModule`):
  :func:`ptb_sentence_data`;
* text pairs (:class:`~nlp_lib.data.seq2seq_datamodule.Seq2SeqDataModule`): :func:`scan_data`
  (generated from the grammar or read), :func:`parallel_data` (line-aligned files, e.g. Multi30K).

The readers live in one module per format (:mod:`~nlp_lib.data.ptb`,
:mod:`~nlp_lib.data.listops_files`...); a builder adds the split files, the cache key and the wiring.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from nlp_lib.constraints import PositiveInt
from nlp_lib.data.bad_input import OnError, unseen_label
from nlp_lib.data.cache import file_fingerprints
from nlp_lib.data.conllu import read_conllu
from nlp_lib.data.listops import generate_splits
from nlp_lib.data.listops_files import read_listops
from nlp_lib.data.parallel import Pair, iter_parallel
from nlp_lib.data.ptb import read_ptb_trees, sst_binary
from nlp_lib.data.scan import SPLIT_FILES, _canonical_split, generate_scan, read_scan_split, scan_splits
from nlp_lib.data.seq2seq_datamodule import Seq2SeqDataModule
from nlp_lib.data.tree_datamodule import SentenceDataModule, TreeDataModule, TreeSplits
from nlp_lib.errors import ConfigError, DataError
from nlp_lib.structure.brackets import parse_unlabelled
from nlp_lib.structure.tree import Tree

__all__ = ["conllu_tree_data", "listops_data", "parallel_data", "ptb_sentence_data", "ptb_tree_data", "scan_data"]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------
# Trees
# ------------------------------------------------------------------------------------------------


def _split_dir(path: str, train_file: str, val_file: str, test_file: str | None) -> tuple[Path, dict[str, str | None]]:
    """The ``data.path`` folder and its split files (train first), checked to exist."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory '{path}' does not exist (expected {train_file}, {val_file} in it)")
    return directory, {"train": train_file, "val": val_file, "test": test_file}


def _split_paths(
    directory: Path, files: dict[str, str | None], only: tuple[str, ...] | None = None
) -> Iterator[tuple[str, Path]]:
    """``(split, file)`` of every configured split (or of those in ``only``), train first; a missing
    test file is no split."""
    for split, name in files.items():
        if only is not None and split not in only:
            continue
        if name is not None and not (split == "test" and not (directory / name).exists()):
            yield split, directory / name


def _files_key(reader: str, directory: Path, files: dict[str, str | None], **options: Any) -> dict[str, Any]:
    """The cache key of split files: their fingerprints and the reader's options."""
    fingerprints = file_fingerprints(directory / f if f else None for f in files.values())
    return {"reader": reader, "files": fingerprints, **options}


def _read_ptb_splits(
    directory: Path,
    files: dict[str, str | None],
    on_error: OnError,
    binary: bool = False,
    num_classes: int | None = None,
    only: tuple[str, ...] | None = None,
    neutral: bool = False,
) -> TreeSplits | tuple[TreeSplits, list[str]]:
    splits: TreeSplits = {}
    known = None  # the training labels: validation and test trees with another label are bad lines
    # labels outside the declared classes (or, undeclared, above a sane maximum) are bad lines
    classes, note = (5, "data.binary=true reads SST's fine-grained labels 0..4") if binary else (num_classes, None)
    for split, f in _split_paths(directory, files, only):
        res = read_ptb_trees(f, on_error=on_error, known_labels=known, num_classes=classes, classes_note=note)
        if split == "train":
            known = res.labels()
        trees = res.trees
        if binary:
            trees = [b for b in (sst_binary(t, neutral) for t in trees) if b is not None]
        splits[split] = trees
    if binary:  # SST-2's classes have names (predictions read "positive"); fine-grained SST keeps its ids
        return splits, ["negative", "positive", "neutral"][: 3 if neutral else 2]
    return splits


def ptb_tree_data(
    *,
    path: str,
    train_file: str = "train.txt",
    val_file: str = "dev.txt",
    test_file: str | None = "test.txt",
    on_error: OnError = "raise",
    binary: bool = False,
    neutral_phrases: bool = False,
    **datamodule_kwargs: Any,
) -> TreeDataModule:
    """Tree data from PTB-style files (SST's ``train.txt``/``dev.txt``/``test.txt``) in a directory.

    Args:
        path: Directory holding the split files (``data.path=`` on the command line).
        train_file: Training split file name.
        val_file: Validation split file name.
        test_file: Test split file name (read if present).
        on_error: ``"raise"`` on a malformed line, or ``"skip"`` it and report the count. A label
            that is not a class id in range is a malformed line: below 0, at or above
            ``num_classes`` (in ``datamodule_kwargs``), or, with no ``num_classes``, above 999.
        binary: SST-2 (see :func:`~nlp_lib.data.ptb.sst_binary`): negative (0) / positive (1) roots,
            neutral sentences dropped.
        neutral_phrases: With ``binary``: neutral phrases are class 2, roots predicted among the
            first two (``root_classes=2``), as Tai et al. (2015) trained (``conf/data/sst.yaml``
            turns it on); ``False`` (the default here, and for runs saved before the option):
            neutral phrases unlabelled and 2 classes.
        **datamodule_kwargs: Passed to :class:`TreeDataModule` (``batch_size``, ``lowercase``...).

    Raises:
        DataError: ``path`` or one of the split files does not exist.
    """
    return _ptb_module(
        TreeDataModule, path, train_file, val_file, test_file, on_error, binary, datamodule_kwargs, neutral_phrases
    )


def ptb_sentence_data(
    *,
    path: str,
    train_file: str = "train.txt",
    val_file: str = "dev.txt",
    test_file: str | None = "test.txt",
    on_error: OnError = "raise",
    binary: bool = False,
    **datamodule_kwargs: Any,
) -> SentenceDataModule:
    """The sentences (leaf words) of PTB-style tree files with their root labels, for sequence models.

    Same arguments as :func:`ptb_tree_data`; batches are padded token sequences.
    """
    if datamodule_kwargs.get("root_classes") is not None:
        raise DataError(
            "data.root_classes: sentence data has root labels only (it is for trees' phrase-only classes); "
            "leave it unset and set data.num_classes"
        )
    return _ptb_module(SentenceDataModule, path, train_file, val_file, test_file, on_error, binary, datamodule_kwargs)


def _ptb_module(
    cls: type,
    path: str,
    train_file: str,
    val_file: str,
    test_file: str | None,
    on_error: OnError,
    binary: bool,
    datamodule_kwargs: dict[str, Any],
    neutral: bool = False,
) -> Any:
    directory, files = _split_dir(path, train_file, val_file, test_file)
    neutral = binary and neutral
    classes = 3 if neutral else 2
    if binary and datamodule_kwargs.get("num_classes") not in (None, classes):
        why = " (negative, positive and, for phrases, neutral; data.neutral_phrases=false for 2)" if neutral else ""
        raise DataError(
            f"data.binary=true needs data.num_classes={classes}{why}, got {datamodule_kwargs['num_classes']}"
        )
    if binary:
        datamodule_kwargs["num_classes"] = classes
    if neutral:  # roots negative or positive; neutral labels phrases only
        datamodule_kwargs.setdefault("root_classes", 2)
    load = partial(
        _read_ptb_splits, directory, files, on_error, binary, datamodule_kwargs.get("num_classes"), neutral=neutral
    )
    key = _files_key("ptb", directory, files, on_error=on_error, binary=binary, neutral=neutral)
    return cls(load=load, cache_key=key, **datamodule_kwargs)


def _listops_generated(sizes: dict[str, int], seed: int, params: dict[str, Any]) -> TreeSplits:
    out: TreeSplits = {}
    for split, examples in generate_splits(sizes, seed, **params).items():
        trees = []
        for label, expr in examples:
            t = parse_unlabelled(expr)
            trees.append(type(t)(parent=t.parent, words=t.words, labels=[-1] * (len(t) - 1) + [label]))
        out[split] = trees
    return out


def _listops_files(
    directory: Path, files: dict[str, str | None], on_error: OnError, only: tuple[str, ...] | None = None
) -> TreeSplits:
    out: TreeSplits = {}
    for split, f in _split_paths(directory, files, only):
        # the label set is the task's (the values 0-9), not the training file's: no known_labels check
        out[split] = read_listops(f, on_error=on_error).labelled_trees()  # skips: one warning
    return out


def listops_data(
    *,
    path: str | None = None,
    train_size: PositiveInt = 20000,
    val_size: PositiveInt = 2000,
    test_size: PositiveInt = 2000,
    max_depth: PositiveInt = 20,
    min_args: int = 2,
    max_args: int = 5,
    max_length: PositiveInt | None = None,
    generator_seed: int = 0,
    train_file: str = "train.tsv",
    val_file: str = "val.tsv",
    test_file: str | None = "test.tsv",
    on_error: OnError = "raise",
    **datamodule_kwargs: Any,
) -> TreeDataModule:
    """ListOps (Nangia & Bowman 2018): generated (the default, no files needed) or read from files.

    Generated data follows ``../shared/data/listops/RULES.md``: seeded, de-duplicated within and
    across splits, written in the official left-branching binarised bracketing, parsed into
    binary trees whose leaves are the tokens.

    Args:
        path: Directory of official-format files (``<label>\\t<expression>``); ``None`` generates.
        train_size: Generated training examples.
        val_size: Generated validation examples.
        test_size: Generated test examples (0: no test split).
        max_depth: Deepest operator nesting of generated expressions (RULES.md: 20).
        min_args: Fewest arguments of a generated operator.
        max_args: Most arguments of a generated operator.
        max_length: Longest generated expression in tokens (``None``: unbounded).
        generator_seed: Seed of the generator (separate from the training seed).
        train_file: File names read under ``path``.
        val_file: See ``train_file``.
        test_file: See ``train_file`` (read if present).
        on_error: ``"raise"`` on a malformed line, or ``"skip"`` it and report the count.
        **datamodule_kwargs: Passed to :class:`TreeDataModule`.
    """
    datamodule_kwargs.setdefault("num_classes", 10)
    if path is None:
        sizes = {"train": train_size, "val": val_size}
        if test_size:
            sizes["test"] = test_size
        params = {"max_depth": max_depth, "min_args": min_args, "max_args": max_args, "max_length": max_length}
        key = {"reader": "listops-generated", "sizes": sizes, "seed": generator_seed, **params}
        return TreeDataModule(
            load=partial(_listops_generated, sizes, generator_seed, params), cache_key=key, **datamodule_kwargs
        )
    directory, files = _split_dir(path, train_file, val_file, test_file)
    key = _files_key("listops", directory, files, on_error=on_error)
    return TreeDataModule(load=partial(_listops_files, directory, files, on_error), cache_key=key, **datamodule_kwargs)


def _read_conllu_splits(
    directory: Path, files: dict[str, str | None], label_comment: str, on_error: OnError
) -> tuple[TreeSplits, list[str]]:
    splits: TreeSplits = {}
    names: list[str] = []
    index: dict[str, int] = {}
    for split, f in _split_paths(directory, files):  # train first: its labels are the label set
        trees, bad = [], []
        for dep in read_conllu(f, on_error=on_error):
            label = dep.comments.get(label_comment)
            where = f"sentence at line {dep.line}" + (f" ({dep.sent_id})" if dep.sent_id else "")
            if label is None:
                problem = f"{where}: no '# {label_comment} = ...' comment (data.label_comment)"
            elif split != "train" and label not in index:
                problem = f"{where}: {unseen_label(label, names)}"
            else:
                problem = ""
            if problem:
                if on_error == "raise":
                    raise DataError(problem, path=str(f), line=dep.line)
                bad.append(problem)
                continue
            trees.append((dep.tree, label))
        if bad:
            log.warning("%s: skipped %d sentence(s) (data.on_error=skip); the first: %s", f, len(bad), bad[0])
        if split == "train":
            names = sorted({y for _, y in trees})
            index = {y: i for i, y in enumerate(names)}
        if not trees:
            raise DataError(f"no labelled sentence left in the '{split}' split", path=str(f))
        splits[split] = [
            Tree(parent=t.parent, words=t.words, labels=[-1] * (len(t) - 1) + [index[y]]) for t, y in trees
        ]
    return splits, names


def conllu_tree_data(
    *,
    path: str,
    train_file: str = "train.conllu",
    val_file: str = "dev.conllu",
    test_file: str | None = "test.conllu",
    label_comment: str = "label",
    on_error: OnError = "raise",
    **datamodule_kwargs: Any,
) -> TreeDataModule:
    """Dependency trees from CoNLL-U files, one label per sentence, for tree classifiers.

    Each sentence is a tree over its words (every word a node with an input, its dependents as
    children; :mod:`nlp_lib.structure.conllu`), labelled by a ``# <label_comment> = <label>``
    comment, e.g. ``# label = positive``. Label names are the training file's, sorted; a validation or
    test label training never saw is an error (or, with ``on_error="skip"``, a skipped sentence).

    Args:
        path: Directory holding the split files (``data.path=``).
        train_file: Training split file name.
        val_file: Validation split file name.
        test_file: Test split file name (read if present).
        label_comment: The comment key holding each sentence's label.
        on_error: ``"raise"`` on a malformed sentence or a missing or unseen label, or ``"skip"``
            the sentence and report the count.
        **datamodule_kwargs: Passed to :class:`TreeDataModule` (``batch_size``, ``tokenizer``...).
    """
    directory, files = _split_dir(path, train_file, val_file, test_file)
    key = _files_key("conllu", directory, files, label_comment=label_comment, on_error=on_error)
    load = partial(_read_conllu_splits, directory, files, label_comment, on_error)
    return TreeDataModule(load=load, cache_key=key, **datamodule_kwargs)


# ------------------------------------------------------------------------------------------------
# Text pairs
# ------------------------------------------------------------------------------------------------


def scan_data(
    *,
    split: str = "simple",
    path: str | None = None,
    val_fraction: float = 0.1,
    on_error: OnError = "raise",
    seed: int = 0,
    **kwargs: Any,
) -> Seq2SeqDataModule:
    """SCAN (Lake & Baroni 2018), word tokens.

    Args:
        split: ``simple``, ``length`` or ``add_prim_jump`` (alias ``add_jump``).
        path: ``None``: the commands generated from the grammar and split by the project
            (:func:`nlp_lib.data.scan.scan_splits`). A directory laid out like the official release
            (``simple_split/tasks_train_simple.txt``...): its train and test files, with
            ``val_fraction`` of train held out for validation.
        val_fraction: Share of the training commands held out for validation.
        on_error: ``raise`` on a malformed line of the official files, or ``skip`` it (one warning
            with the count).
        seed: Seed of the random splits and of the epoch orders.
        **kwargs: :class:`Seq2SeqDataModule` options (``batch_size``...).
    """
    name = _canonical_split(split)  # an unknown data.split fails now, not when the data is first read
    key: dict[str, Any] = {"reader": "scan", "split": name, "val_fraction": val_fraction, "seed": seed}
    if path is None:

        def load() -> dict[str, list[Pair]]:
            return scan_splits(generate_scan(), split, seed=seed, val_fraction=val_fraction)

    else:
        root = Path(path)
        if not root.is_dir():
            raise DataError(f"data.path: SCAN directory '{root}' does not exist")
        key["files"] = file_fingerprints(root / rel for rel in SPLIT_FILES[name])
        key["on_error"] = on_error

        def load() -> dict[str, list[Pair]]:
            files = read_scan_split(path, split, on_error=on_error)  # val: held out of train by the DataModule
            return {"train": files["train"], "test": files["test"]}

    kwargs.setdefault("tokenizer", "word")
    return Seq2SeqDataModule(load, seed=seed, val_fraction=val_fraction, cache_key=key, **kwargs)


def parallel_data(
    *,
    path: str,
    source: str,
    target: str,
    train: str = "train",
    val: str | None = "val",
    test: str | None = None,
    val_fraction: float = 0.05,
    on_error: OnError = "raise",
    seed: int = 0,
    **kwargs: Any,
) -> Seq2SeqDataModule:
    """Parallel text: ``<path>/<prefix>.<source>`` and ``<path>/<prefix>.<target>`` (``.gz`` found too).

    Args:
        path: The folder of the files.
        source / target: Language suffixes (``en``, ``de``).
        train / val / test: File prefixes per split (``val=None`` holds out ``val_fraction`` of
            train; ``test=None``: no test split).
        on_error: ``raise`` on a half-empty pair, or ``skip`` it (with a warning).
        **kwargs: :class:`Seq2SeqDataModule` options (``tokenizer``, ``vocab_size``...).
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"data.path: {root} is not a directory")

    def find(prefix: str, lang: str, key: str) -> Path:
        candidates = [root / f"{prefix}.{lang}", root / f"{prefix}.{lang}.gz"]
        for p in candidates:
            if p.is_file():
                return p
        for p in candidates:  # there, but not a file: say what it is, not that it is missing
            if p.exists():
                what = "a directory" if p.is_dir() else "not a regular file"
                raise ConfigError(f"data.{key}: {p} is {what}; the {key} split's {lang} side must be a text file")
        raise ConfigError(f"data.{key}: neither {candidates[0]} nor its .gz exists")

    files = {
        split: (find(prefix, source, split), find(prefix, target, split))
        for split, prefix in (("train", train), ("val", val), ("test", test))
        if prefix is not None
    }

    def load() -> dict[str, Iterator[Pair]]:  # streamed into Arrow; without val, the DataModule holds one out
        return {split: iter_parallel(s, t, on_error=on_error) for split, (s, t) in files.items()}

    key = {
        "reader": "parallel",
        "files": {split: file_fingerprints(pair) for split, pair in files.items()},
        "on_error": on_error,
        "val_fraction": val_fraction if val is None else None,
        "seed": seed if val is None else None,
    }
    kwargs.setdefault("tokenizer", "sentencepiece")
    return Seq2SeqDataModule(load, seed=seed, val_fraction=val_fraction, cache_key=key, **kwargs)
