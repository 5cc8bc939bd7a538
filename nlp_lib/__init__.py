"""nlp_lib: NLP models whose computation graph changes with every input, batched automatically."""

__version__ = "0.1.0"
