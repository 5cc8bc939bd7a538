"""Readers, generators, vocabularies, collate functions and LightningDataModules.

Names are imported lazily, so ``from nlp_lib.data.vocab import WordVocab`` (what a loaded model
needs) does not import Lightning; the DataModules do.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EncodedTree": "nlp_lib.data.collate",
    "collate_trees": "nlp_lib.data.collate",
    "encode_tree": "nlp_lib.data.collate",
    "read_ptb_trees": "nlp_lib.data.ptb",
    "read_conllu": "nlp_lib.data.conllu",
    "ptb_tree_data": "nlp_lib.data.builders",
    "conllu_tree_data": "nlp_lib.data.builders",
    "encode_tree_subwords": "nlp_lib.data.collate",
    "BucketBatchSampler": "nlp_lib.data.sampling",
    "BalancedBatchSampler": "nlp_lib.data.sampling",
    "ptb_sentence_data": "nlp_lib.data.builders",
    "SentenceDataModule": "nlp_lib.data.tree_datamodule",
    "listops_data": "nlp_lib.data.builders",
    "TreeDataModule": "nlp_lib.data.tree_datamodule",
    "WordVocab": "nlp_lib.data.vocab",
    "SentencePieceTokenizer": "nlp_lib.data.tokenizers",
    "TextDataModule": "nlp_lib.data.text_datamodule",
    "read_labelled_text": "nlp_lib.data.text",
    "Seq2SeqDataModule": "nlp_lib.data.seq2seq_datamodule",
    "Seq2SeqVocab": "nlp_lib.data.vocab",
    "scan_data": "nlp_lib.data.builders",
    "parallel_data": "nlp_lib.data.builders",
    "read_parallel": "nlp_lib.data.parallel",
    "generate_scan": "nlp_lib.data.scan",
    "read_scan": "nlp_lib.data.scan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nlp_lib.data' has no attribute {name!r}")
