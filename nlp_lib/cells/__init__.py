"""Per-node and per-step cells (torch only)."""

from nlp_lib.cells.base import Children, RecursiveState, TreeCell, TreeGRUState, TreeLSTMState
from nlp_lib.cells.recursive_nn import RecursiveNNCell
from nlp_lib.cells.tree_gru import ChildSumTreeGRUCell
from nlp_lib.cells.tree_lstm import ChildSumTreeLSTMCell, NaryTreeLSTMCell

__all__ = [
    "Children",
    "TreeCell",
    "TreeLSTMState",
    "TreeGRUState",
    "RecursiveState",
    "ChildSumTreeLSTMCell",
    "NaryTreeLSTMCell",
    "ChildSumTreeGRUCell",
    "RecursiveNNCell",
]
