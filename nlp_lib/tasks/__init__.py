"""LightningModules: loss, metrics, optimisers and logging around one model."""

from nlp_lib.tasks.base import ClassificationTask
from nlp_lib.tasks.seq2seq import Seq2SeqTask
from nlp_lib.tasks.sequence_classification import SequenceClassificationTask
from nlp_lib.tasks.tree_classification import TreeClassificationTask

__all__ = ["ClassificationTask", "Seq2SeqTask", "SequenceClassificationTask", "TreeClassificationTask"]
