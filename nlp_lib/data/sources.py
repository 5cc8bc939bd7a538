"""DataModule builders: one per data source, every knob a plain keyword argument (Hydra targets)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from nlp_lib.constraints import PositiveInt
from nlp_lib.data.cache import file_fingerprints
from nlp_lib.data.ptb import OnError, read_ptb_trees
from nlp_lib.data.tree_datamodule import SentenceDataModule, TreeDataModule, TreeSplits
from nlp_lib.errors import DataError
from nlp_lib.structure.tree import Tree

__all__ = ["conllu_tree_data", "ptb_tree_data", "ptb_sentence_data", "listops_data", "sst_binary"]


_SST_BINARY = {0: 0, 1: 0, 2: -1, 3: 1, 4: 1}


def sst_binary(tree: Tree) -> Tree | None:
    """SST-2 from a fine-grained SST tree: labels 0, 1 -> 0 and 3, 4 -> 1; neutral (2) nodes get no label.

    Returns ``None`` for a tree whose root is neutral (SST-2 drops those sentences).
    """
    if tree.labels is None or tree.labels[-1] == 2:
        return None
    if not set(tree.labels) <= set(_SST_BINARY) | {-1}:
        raise DataError(f"binary SST needs labels 0..4, found {sorted(set(tree.labels))}")
    return Tree(parent=tree.parent, words=tree.words, labels=[_SST_BINARY.get(x, -1) for x in tree.labels])


def _split_dir(path: str, train_file: str, val_file: str, test_file: str | None) -> tuple[Path, dict[str, str | None]]:
    """The ``data.path`` folder and its split files (train first), checked to exist."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory '{path}' does not exist (expected {train_file}, {val_file} in it)")
    return directory, {"train": train_file, "val": val_file, "test": test_file}


def _split_paths(directory: Path, files: dict[str, str | None]) -> Iterator[tuple[str, Path]]:
    """``(split, file)`` of every configured split, train first; a missing test file is no split."""
    for split, name in files.items():
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
) -> TreeSplits:
    splits: TreeSplits = {}
    known = None  # the training labels: validation and test trees with another label are bad lines
    # labels outside the declared classes (or, undeclared, above a sane maximum) are bad lines
    classes, note = (5, "data.binary=true reads SST's fine-grained labels 0..4") if binary else (num_classes, None)
    for split, f in _split_paths(directory, files):
        res = read_ptb_trees(f, on_error=on_error, known_labels=known, num_classes=classes, classes_note=note)
        if split == "train":
            known = res.labels()
        trees = res.trees
        if binary:
            trees = [b for b in map(sst_binary, trees) if b is not None]
        splits[split] = trees
    return splits


def ptb_tree_data(
    *,
    path: str,
    train_file: str = "train.txt",
    val_file: str = "dev.txt",
    test_file: str | None = "test.txt",
    on_error: OnError = "raise",
    binary: bool = False,
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
        binary: SST-2 (see :func:`sst_binary`): positive / negative, neutral sentences dropped and
            neutral phrases unlabelled. Set ``num_classes`` to 2.
        **datamodule_kwargs: Passed to :class:`TreeDataModule` (``batch_size``, ``lowercase``...).

    Raises:
        DataError: ``path`` or one of the split files does not exist.
    """
    return _ptb_module(TreeDataModule, path, train_file, val_file, test_file, on_error, binary, datamodule_kwargs)


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
) -> Any:
    directory, files = _split_dir(path, train_file, val_file, test_file)
    if binary and datamodule_kwargs.get("num_classes") not in (None, 2):
        raise DataError(f"data.binary=true needs data.num_classes=2, got {datamodule_kwargs['num_classes']}")
    if binary:
        datamodule_kwargs["num_classes"] = 2
    load = partial(_read_ptb_splits, directory, files, on_error, binary, datamodule_kwargs.get("num_classes"))
    key = _files_key("ptb", directory, files, on_error=on_error, binary=binary)
    return cls(load=load, cache_key=key, **datamodule_kwargs)


def _listops_generated(sizes: dict[str, int], seed: int, params: dict[str, Any]) -> TreeSplits:
    from nlp_lib.data.listops import generate_splits
    from nlp_lib.structure.brackets import parse_unlabelled

    out: TreeSplits = {}
    for split, examples in generate_splits(sizes, seed, **params).items():
        trees = []
        for label, expr in examples:
            t = parse_unlabelled(expr)
            trees.append(type(t)(parent=t.parent, words=t.words, labels=[-1] * (len(t) - 1) + [label]))
        out[split] = trees
    return out


def _listops_files(directory: Path, files: dict[str, str | None], on_error: OnError) -> TreeSplits:
    from nlp_lib.data.listops import read_listops

    out: TreeSplits = {}
    for split, f in _split_paths(directory, files):
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
        binary: SST-2 (see :func:`sst_binary`): positive / negative, neutral sentences dropped and
            neutral phrases unlabelled. Set ``num_classes`` to 2.
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
    import logging

    from nlp_lib.data.bad_input import unseen_label
    from nlp_lib.data.conllu import read_conllu

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
            logging.getLogger(__name__).warning(
                "%s: skipped %d sentence(s) (data.on_error=skip); the first: %s", f, len(bad), bad[0]
            )
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
