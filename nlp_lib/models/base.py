"""The base of the library's models: plain ``nn.Module`` s that can write themselves as bundles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from nlp_lib.configurable import Configurable, describe
from nlp_lib.errors import BundleError

__all__ = ["SavableModel"]

_WRITTEN_BY_SAVE = ("format_version", "nlp_lib_version", "tokenizer")


class SavableModel(Configurable, nn.Module):
    """An ``nn.Module`` that records its constructor arguments, so it can be saved as a bundle.

    Nothing else changes: subclasses are used, trained and composed like any module.
    """

    def config(self) -> dict[str, Any]:
        """The ``_target_`` config that rebuilds this model (a bundle's ``config.yaml``)."""
        return describe(self, type(self).__name__)

    def save(
        self,
        path: str | Path,
        *,
        tokenizer: Any = None,
        labels: Sequence[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Path:
        """Write this model as a bundle that :func:`nlp_lib.load` reads back (see :mod:`nlp_lib.bundle`).

        Args:
            path: The bundle directory (created if needed; files in it are replaced).
            tokenizer: A :class:`~nlp_lib.data.vocab.WordVocab`,
                :class:`~nlp_lib.data.tokenizers.SentencePieceTokenizer`, or for seq2seq
                ``{"source": ..., "target": ...}``. Default: the one attached by :func:`nlp_lib.load`
                (``self.tokenizer``).
            labels: Label names in class-id order. Default: ``self.labels`` (seq2seq: none).
            meta: Extra metadata for ``meta.json`` (merged over a loaded bundle's).

        Raises:
            BundleError: no tokenizer or labels known, labels that do not match the output layer, or
                a constructor argument that cannot be written as config.
        """
        from nlp_lib.bundle import save

        tokenizer = tokenizer if tokenizer is not None else getattr(self, "tokenizer", None)
        if tokenizer is None:
            raise BundleError(
                f"{path}: save needs the model's tokenizer: pass tokenizer= (a model loaded with nlp_lib.load has one)"
            )
        if labels is None:
            labels = getattr(self, "labels", None)
        num_classes = getattr(self, "num_classes", None)
        if labels is None:
            if num_classes is not None:
                raise BundleError(f"{path}: save needs the label names: pass labels= ({num_classes} names)")
            labels = []
        labels = [str(x) for x in labels]
        if num_classes is not None and len(labels) != num_classes:
            raise BundleError(f"{path}: {len(labels)} labels given, the output layer has {num_classes} classes")
        info = {k: v for k, v in (getattr(self, "bundle_meta", None) or {}).items() if k not in _WRITTEN_BY_SAVE}
        info.update(meta or {})
        return save(self, path, config=self.config(), tokenizer=tokenizer, labels=labels, meta=info)
