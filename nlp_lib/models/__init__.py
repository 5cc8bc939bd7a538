"""Complete models as plain ``nn.Module`` s (no Lightning, no Hydra)."""

from nlp_lib.models.sequence import SequenceClassifier, SequenceClassifierOutput, SequenceTagger
from nlp_lib.models.tree_classifier import TreeClassifier, TreeClassifierOutput

__all__ = ["SequenceClassifier", "SequenceClassifierOutput", "SequenceTagger", "TreeClassifier", "TreeClassifierOutput"]
