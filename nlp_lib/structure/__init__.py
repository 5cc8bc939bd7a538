"""Trees and schedules as arrays; tree-format parsers (torch only)."""

from nlp_lib.structure.brackets import parse_ptb
from nlp_lib.structure.dag import Dag
from nlp_lib.structure.schedule import LevelView, TreeBatch
from nlp_lib.structure.seq2seq import Seq2SeqBatch
from nlp_lib.structure.sequence import SequenceBatch
from nlp_lib.structure.tree import Tree, compute_heights

__all__ = ["Dag", "Tree", "TreeBatch", "SequenceBatch", "Seq2SeqBatch", "LevelView", "compute_heights", "parse_ptb"]
