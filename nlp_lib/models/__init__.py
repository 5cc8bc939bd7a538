"""Complete models as plain ``nn.Module`` s (no Lightning, no Hydra)."""

from nlp_lib.models.seq2seq import Seq2Seq, Seq2SeqOutput
from nlp_lib.models.sequence import (
    SequenceClassifier,
    SequenceClassifierOutput,
    SequenceTagger,
    SequenceTaggerOutput,
)
from nlp_lib.models.tree_classifier import TreeClassifier, TreeClassifierOutput

__all__ = [
    "Seq2Seq",
    "Seq2SeqOutput",
    "SequenceClassifier",
    "SequenceClassifierOutput",
    "SequenceTagger",
    "SequenceTaggerOutput",
    "TreeClassifier",
    "TreeClassifierOutput",
]
