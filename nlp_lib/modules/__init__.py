"""Reusable layers built on structures and cells."""

from nlp_lib.modules.tree_runner import TreeRunner, run_levels, run_recursive

__all__ = ["TreeRunner", "run_levels", "run_recursive"]
