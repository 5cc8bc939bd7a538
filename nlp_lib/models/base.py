"""The base of the library's models: plain ``nn.Module`` s that record how they were built."""

from __future__ import annotations

from typing import Any

from torch import nn

from nlp_lib.configurable import Configurable, describe

__all__ = ["SavableModel"]


class SavableModel(Configurable, nn.Module):
    """An ``nn.Module`` that records its constructor arguments, so it can be written as a bundle
    (``nlp_lib.save(model, dir, tokenizer=..., labels=...)``, :func:`nlp_lib.bundle.save`).

    Nothing else changes: subclasses are used, trained and composed like any module.
    """

    def config(self) -> dict[str, Any]:
        """The ``_target_`` config that rebuilds this model (a bundle's ``config.yaml``)."""
        return describe(self, type(self).__name__)
