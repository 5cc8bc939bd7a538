"""Trees and schedules as arrays; tree-format parsers (torch only)."""

from nlp_lib.structure.schedule import LevelView, TreeBatch
from nlp_lib.structure.tree import Tree, compute_heights

__all__ = ["Tree", "TreeBatch", "LevelView", "compute_heights"]
