"""LightningModules: loss, metrics, optimisers and logging around one model."""

from nlp_lib.tasks.tree_classification import TreeClassificationTask

__all__ = ["TreeClassificationTask"]
