"""Hydra config groups (shipped inside the package as nlp_lib.conf)."""
