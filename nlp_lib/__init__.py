"""nlp_lib: NLP models whose computation graph changes with every input, batched automatically.

``nlp_lib.load(bundle_dir)`` returns a trained model's predictor (:mod:`nlp_lib.predict`): the plain
``nn.Module`` as ``.model``, with its tokenizer, labels and ``predict``; it imports neither
Lightning nor Hydra. ``nlp_lib.save(model, dir, tokenizer=..., labels=...)`` writes a bundle
(:mod:`nlp_lib.bundle`).
"""

from __future__ import annotations

from typing import Any

from nlp_lib.version import __version__

__all__ = ["__version__", "load", "save"]


def load(path: Any, **kwargs: Any) -> Any:
    """Load a model bundle into its predictor (see :func:`nlp_lib.predict.load`)."""
    from nlp_lib.predict import load as _load

    return _load(path, **kwargs)


def save(model: Any, path: Any, **kwargs: Any) -> Any:
    """Write a model as a bundle (see :func:`nlp_lib.bundle.save`)."""
    from nlp_lib.bundle import save as _save

    return _save(model, path, **kwargs)
