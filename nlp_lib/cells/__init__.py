"""Per-node and per-step cells (torch only)."""

from nlp_lib.cells.base import TreeCell, TreeLSTMState
from nlp_lib.cells.tree_lstm import ChildSumTreeLSTMCell, NaryTreeLSTMCell

__all__ = ["TreeCell", "TreeLSTMState", "ChildSumTreeLSTMCell", "NaryTreeLSTMCell"]
