"""Sequence models: embeddings -> a recurrent cell run by SequenceRunner -> classes per sequence or per token.

Plain ``nn.Module`` s with typed constructors: no Lightning, no Hydra. The cell is any recurrent
cell (``nlp_lib.cells.LSTMCell``, ``LayerNormLSTMCell``, a user's own class), given as a factory of
``(input_size, hidden_size)`` because a stacked or bidirectional runner builds one per layer and
direction.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from nlp_lib.constraints import PositiveInt, Probability
from nlp_lib.models.base import SavableModel
from nlp_lib.modules.seq_runner import CellFactory, SequenceRunner
from nlp_lib.structure.sequence import SequenceBatch

__all__ = ["SequenceClassifier", "SequenceClassifierOutput", "SequenceTagger", "SequenceTaggerOutput"]

Pooling = Literal["last", "mean", "max"]


class SequenceClassifierOutput(NamedTuple):
    """``logits`` ``[B, C]`` and the pooled sentence vectors ``pooled`` ``[B, D]``."""

    logits: Tensor
    pooled: Tensor


class SequenceTaggerOutput(NamedTuple):
    """``logits`` ``[B, T, C]``: a score per token and tag (rows past a sequence's length are padding)."""

    logits: Tensor


def _recurrent_body(
    module: nn.Module, vocab_size: int, num_classes: int, cell: CellFactory, embedding_size: PositiveInt, **runner: Any
) -> None:
    """The embedding, runner, dropout and output layer every sequence model here shares."""
    module.vocab_size = vocab_size
    module.num_classes = num_classes
    module.embedding = nn.Embedding(vocab_size, embedding_size)
    dropout = runner.pop("dropout")
    module.runner = SequenceRunner(cell=cell, input_size=embedding_size, dropout=dropout, **runner)
    module.dropout = nn.Dropout(dropout)
    module.classifier = nn.Linear(module.runner.output_size, num_classes)


class SequenceClassifier(SavableModel):
    """Classify token sequences: embeddings -> recurrent layers -> pooling -> a linear layer.

    Args:
        vocab_size: Number of token ids (id ``pad_id`` pads).
        num_classes: Number of labels.
        cell: Builds a recurrent cell from ``(input_size, hidden_size)``.
        embedding_size: Size of the token embeddings (the first layer's input).
        hidden_size: Size of each direction's state.
        num_layers: Stacked layers.
        bidirectional: Run both directions.
        dropout: Dropout on the embeddings, between layers and before the classifier.
        recurrent_dropout: Variational dropout on the recurrent state.
        pooling: ``"last"`` (final states of both directions), ``"mean"`` or ``"max"`` over the
            real tokens.
        fused: Let the runner use PyTorch's fused LSTM/GRU kernels for plain LSTM/GRU cells.
        compile: ``torch.compile`` the runner's step.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        cell: CellFactory,
        embedding_size: PositiveInt = 128,
        hidden_size: PositiveInt = 128,
        num_layers: PositiveInt = 1,
        bidirectional: bool = False,
        dropout: Probability = 0.0,
        recurrent_dropout: Probability = 0.0,
        pooling: Pooling = "last",
        fused: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean", "max"):
            raise ValueError(f"pooling must be 'last', 'mean' or 'max', got {pooling!r}")
        self.pooling = pooling
        _recurrent_body(
            self,
            vocab_size,
            num_classes,
            cell,
            embedding_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            fused=fused,
            compile=compile,
        )

    def forward(self, batch: SequenceBatch) -> SequenceClassifierOutput:
        x = self.dropout(self.embedding(batch.tokens))  # [B, T, E]
        out = self.runner(x, batch.lengths)
        if self.pooling == "last":
            pooled = out.last  # [B, D]
        else:
            valid = (torch.arange(x.shape[1], device=x.device) < batch.lengths.unsqueeze(1)).unsqueeze(-1)
            if self.pooling == "mean":
                pooled = out.outputs.sum(1) / batch.lengths.unsqueeze(1).to(x.dtype)
            else:
                pooled = out.outputs.masked_fill(~valid, float("-inf")).amax(1)
        return SequenceClassifierOutput(self.classifier(self.dropout(pooled)), pooled)


class SequenceTagger(SavableModel):
    """A label per token: embeddings -> recurrent layers -> a linear layer per step.

    Args: as :class:`SequenceClassifier`, without ``pooling``; ``num_classes`` is the tag count.
    Returns a :class:`SequenceTaggerOutput` whose ``logits`` are ``[B, T, num_classes]`` (rows past a
    sequence's length are meaningless; mask them with ``batch.lengths`` or labels ``-1``).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        num_classes: int,
        cell: CellFactory,
        embedding_size: PositiveInt = 128,
        hidden_size: PositiveInt = 128,
        num_layers: PositiveInt = 1,
        bidirectional: bool = True,
        dropout: Probability = 0.0,
        recurrent_dropout: Probability = 0.0,
        fused: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        _recurrent_body(
            self,
            vocab_size,
            num_classes,
            cell,
            embedding_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            fused=fused,
            compile=compile,
        )

    def forward(self, batch: SequenceBatch) -> SequenceTaggerOutput:
        out = self.runner(self.dropout(self.embedding(batch.tokens)), batch.lengths)
        return SequenceTaggerOutput(self.classifier(self.dropout(out.outputs)))  # [B, T, C]
