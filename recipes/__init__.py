"""Runnable experiments: one YAML per recipe (shipped inside the package as nlp_lib.recipes)."""
