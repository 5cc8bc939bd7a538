"""Per-node and per-step cells (torch only)."""

from nlp_lib.cells.base import Children, RecursiveState, TreeCell, TreeGRUState, TreeLSTMState
from nlp_lib.cells.recursive_nn import RecursiveNNCell
from nlp_lib.cells.rnn import (
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    LSTMState,
    MinimalGatedCell,
    RecurrentCell,
    RecurrentCellBase,
    RNNState,
)
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
    "RecurrentCell",
    "RecurrentCellBase",
    "LSTMState",
    "RNNState",
    "LSTMCell",
    "GRUCell",
    "LayerNormLSTMCell",
    "MinimalGatedCell",
]
