"""nlp_lib: NLP models whose computation graph changes with every input, batched automatically.

``nlp_lib.load(bundle_dir)`` returns a trained model (a plain ``nn.Module``) ready to ``predict``;
it imports neither Lightning nor Hydra.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load"]


def load(path: Any, **kwargs: Any) -> Any:
    """Load a model bundle (see :func:`nlp_lib.bundle.load`)."""
    from nlp_lib.bundle import load as _load

    return _load(path, **kwargs)
