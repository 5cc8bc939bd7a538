"""Reusable layers built on structures and cells."""

from nlp_lib.modules.check import check_cell
from nlp_lib.modules.seq_runner import SequenceOutput, SequenceRunner
from nlp_lib.modules.tree_runner import TreeRunner, run_levels, run_recursive

__all__ = ["SequenceOutput", "SequenceRunner", "TreeRunner", "check_cell", "run_levels", "run_recursive"]
