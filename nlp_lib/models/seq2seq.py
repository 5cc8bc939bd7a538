"""Encoder-decoder with attention: any recurrent cell, Luong and Bahdanau scoring, input feeding.

A plain ``nn.Module`` (no Lightning, no Hydra). The encoder is a :class:`~nlp_lib.modules.SequenceRunner`
(bidirectional and stacked as configured) over source embeddings; the decoder is a stack of cells of
the same protocol, run one step at a time because every output decides the next input:

1. ``x_t = [E(y_{t-1}); h~_{t-1}]`` (input feeding, Luong et al. 2015 §3.3; ``E(y_{t-1})`` alone without it);
2. the stacked decoder cells: ``s_t`` (top layer's ``h``);
3. attention over the encoder outputs ``m_1..m_S`` (padding masked): ``a_t = softmax(score(s_t, m))``,
   ``c_t = sum_s a_ts m_s`` with ``score`` one of

   * ``dot``: ``s_t . m_s`` (Luong), which needs ``decoder hidden == encoder output size``;
   * ``general``: ``s_t . W_a m_s`` (Luong);
   * ``additive``: ``v . tanh(W_q s_t + W_k m_s)`` (Bahdanau et al. 2015's scoring function);

4. ``h~_t = tanh(W_c [c_t; s_t])``, logits ``W_o h~_t`` (``W_o`` = the target embedding with
   ``tie_embeddings``, which needs ``hidden_size == embedding_size``).

Decoding (greedy, batched beam search) lives in :mod:`nlp_lib.models.decoding`.

Minh-Thang Luong, Hieu Pham, Christopher D. Manning. "Effective Approaches to Attention-based Neural
Machine Translation". EMNLP 2015. Dzmitry Bahdanau, Kyunghyun Cho, Yoshua Bengio. "Neural Machine
Translation by Jointly Learning to Align and Translate". ICLR 2015.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from nlp_lib.cells import gemm
from nlp_lib.cells.rnn import LSTMCell
from nlp_lib.constraints import PositiveInt, Probability
from nlp_lib.models.base import SavableModel
from nlp_lib.modules.seq_runner import SequenceRunner
from nlp_lib.structure.seq2seq import BOS, EOS, PAD, UNK  # special ids every seq2seq vocabulary uses

__all__ = ["Attention", "DecoderState", "Encoded", "Seq2Seq", "Seq2SeqOutput", "PAD", "UNK", "BOS", "EOS"]


AttentionKind = Literal["dot", "general", "additive"]
CellFactory = Callable[[int, int], nn.Module]


class Attention(nn.Module):
    """Scores a decoder state against every encoder output; padding positions get no weight.

    Args:
        kind: ``"dot"``, ``"general"`` (Luong) or ``"additive"`` (Bahdanau).
        query_size: Size of the decoder state ``s_t``.
        memory_size: Size of an encoder output ``m_s``.
        attention_size: Hidden size of the additive scorer (default ``query_size``).
    """

    def __init__(
        self, kind: AttentionKind, query_size: int, memory_size: int, attention_size: PositiveInt | None = None
    ):
        super().__init__()
        if kind not in ("dot", "general", "additive"):
            raise ValueError(f"attention must be 'dot', 'general' or 'additive', got {kind!r}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(
                f"dot attention needs the decoder hidden size ({query_size}) to equal the encoder output size "
                f"({memory_size}); use 'general' or 'additive'"
            )
        self.kind = kind
        if kind == "general":
            self.W_a = gemm.Linear(memory_size, query_size, bias=False)  # nn.Linear on oneDNN where faster
        elif kind == "additive":
            size = attention_size or query_size
            self.W_q = nn.Linear(query_size, size, bias=False)
            self.W_k = nn.Linear(memory_size, size)
            self.v = nn.Linear(size, 1, bias=False)

    def keys(self, memory: Tensor) -> Tensor:
        """The per-source-position part of the score, computed once per sentence: ``[B, S, K]``."""
        if self.kind == "general":
            return self.W_a(memory)
        if self.kind == "additive":
            return self.W_k(memory)
        return memory

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """``(context [B, M], weights [B, S])`` for ``query`` ``[B, H]``; ``mask`` ``[B, S]`` is True on real tokens."""
        if self.kind == "additive":
            scores = self.v(torch.tanh(keys + self.W_q(query).unsqueeze(1))).squeeze(-1)  # [B, S]
        else:
            scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)  # [B, S]
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights.unsqueeze(1), memory).squeeze(1), weights


class Encoded(NamedTuple):
    """The encoder's results a decoder step reads (every tensor's first dimension is the batch)."""

    memory: Tensor  # [B, S, M] encoder outputs
    keys: Tensor  # [B, S, K] attention keys
    mask: Tensor  # [B, S] True on real source tokens


@dataclass
class DecoderState:
    """Everything that carries from one decoder step to the next, per sentence (or beam)."""

    cells: list[tuple[Tensor, ...]]  # each decoder layer's state
    feed: Tensor  # [B, H] the previous attentional hidden state h~ (input feeding)

    def select(self, index: Tensor) -> DecoderState:
        """The states of rows ``index`` (beam search reorders and retires rows)."""
        return DecoderState(
            [type(s)(*(t.index_select(0, index) for t in s)) for s in self.cells], self.feed.index_select(0, index)
        )


class Seq2SeqOutput(NamedTuple):
    """Training-time output: ``logits`` ``[B, T, V]`` for every target position, ``attention`` ``[B, T, S]``."""

    logits: Tensor
    attention: Tensor


class Seq2Seq(SavableModel):
    """Attention encoder-decoder over token ids (see the module docstring).

    Args:
        src_vocab_size: Source vocabulary size (ids ``PAD=0, UNK=1, BOS=2, EOS=3`` reserved).
        tgt_vocab_size: Target vocabulary size (same reserved ids).
        cell: Builds a recurrent cell from ``(input_size, hidden_size)`` for the encoder (one per
            layer and direction), e.g. ``nlp_lib.cells.LSTMCell`` or a user's class.
        decoder_cell: The same for the decoder layers (default: ``cell``).
        embedding_size: Size of source and target embeddings.
        hidden_size: Decoder hidden size; each encoder direction gets ``hidden_size // 2`` when
            bidirectional, so encoder outputs are ``hidden_size`` wide either way.
        num_layers: Encoder layers; ``decoder_layers`` defaults to the same.
        bidirectional: Bidirectional encoder.
        attention: ``"dot"``, ``"general"`` or ``"additive"``.
        input_feeding: Feed ``h~_{t-1}`` into the decoder's input.
        dropout: Dropout on embeddings, between layers and on ``h~``.
        tie_embeddings: Output projection = target embedding (needs ``hidden_size == embedding_size``).
        share_embeddings: One embedding for source and target (a shared vocabulary).
        teacher_forcing: Probability, per target position in training, of feeding the gold previous
            token; otherwise the model's own previous prediction is fed (scheduled sampling).
    """

    def __init__(
        self,
        *,
        src_vocab_size: PositiveInt,
        tgt_vocab_size: PositiveInt,
        cell: CellFactory = LSTMCell,
        decoder_cell: CellFactory | None = None,
        embedding_size: PositiveInt = 128,
        hidden_size: PositiveInt = 256,
        num_layers: PositiveInt = 1,
        decoder_layers: PositiveInt | None = None,
        bidirectional: bool = True,
        attention: AttentionKind = "general",
        input_feeding: bool = True,
        dropout: Probability = 0.1,
        tie_embeddings: bool = False,
        share_embeddings: bool = False,
        teacher_forcing: Probability = 1.0,
    ) -> None:
        super().__init__()
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size, got {hidden_size}")
        if tie_embeddings and hidden_size != embedding_size:
            raise ValueError(
                f"tie_embeddings needs hidden_size == embedding_size (got {hidden_size} and {embedding_size})"
            )
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError("share_embeddings needs one vocabulary (src_vocab_size == tgt_vocab_size)")
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be in [0, 1], got {teacher_forcing}")
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.hidden_size = hidden_size
        self.input_feeding = input_feeding
        self.teacher_forcing = teacher_forcing
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_size, padding_idx=PAD)
        self.tgt_embedding = (
            self.src_embedding if share_embeddings else nn.Embedding(tgt_vocab_size, embedding_size, padding_idx=PAD)
        )
        self.encoder = SequenceRunner(
            cell=cell,
            input_size=embedding_size,
            hidden_size=hidden_size // 2 if bidirectional else hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
        )
        dec_factory = decoder_cell or cell
        layers = decoder_layers or num_layers
        dec_in = embedding_size + (hidden_size if input_feeding else 0)
        self.decoder_cells = nn.ModuleList(
            dec_factory(dec_in if i == 0 else hidden_size, hidden_size) for i in range(layers)
        )
        self.bridge = nn.Linear(hidden_size, hidden_size)  # encoder summary -> each decoder layer's initial h
        self.attention = Attention(attention, hidden_size, hidden_size)
        self.combine = gemm.Linear(2 * hidden_size, hidden_size, bias=False)  # W_c [c_t; s_t]
        self.output = None if tie_embeddings else nn.Linear(hidden_size, tgt_vocab_size)
        self.output_bias = nn.Parameter(torch.zeros(tgt_vocab_size)) if tie_embeddings else None
        self.dropout = nn.Dropout(dropout)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """What ``freeze_encoder_steps`` holds still: the encoder, and the source embedding unless the
        decoder shares it (``share_embeddings``: it is also the target embedding, and with
        ``tie_embeddings`` the output layer, so it keeps training with the decoder)."""
        shared = self.src_embedding is self.tgt_embedding
        return [*([] if shared else self.src_embedding.parameters()), *self.encoder.parameters()]

    # ------------------------------------------------------------------ building blocks

    def encode(self, src: Tensor, src_lengths: Tensor) -> tuple[Encoded, DecoderState]:
        """Encode ``src`` ``[B, S]`` (lengths ``[B]``): the attention memory and the decoder's initial state."""
        emb = self.dropout(self.src_embedding(src))
        enc = self.encoder(emb, src_lengths)
        memory = enc.outputs  # [B, S, H]
        mask = torch.arange(src.shape[1], device=src.device).unsqueeze(0) < src_lengths.to(
            src.device, non_blocking=True
        ).unsqueeze(1)
        h0 = torch.tanh(self.bridge(enc.last))  # [B, H]
        cells = []
        for cell in self.decoder_cells:
            zero = cell.initial_state(src.shape[0], device=memory.device, dtype=memory.dtype)
            cells.append(type(zero)(h0, *zero[1:]))
        feed = memory.new_zeros(src.shape[0], self.hidden_size)
        return Encoded(memory, self.attention.keys(memory), mask), DecoderState(cells, feed)

    def step(self, y_prev: Tensor, state: DecoderState, enc: Encoded) -> tuple[Tensor, DecoderState, Tensor]:
        """One decoder step: ``(logits [B, V], new state, attention weights [B, S])`` after token ``y_prev`` ``[B]``."""
        out, state, weights = self.step_hidden(self.tgt_embedding(y_prev), state, enc)
        return self.project_vocab(out), state, weights

    def step_hidden(self, emb: Tensor, state: DecoderState, enc: Encoded) -> tuple[Tensor, DecoderState, Tensor]:
        """What must run step by step: from the previous token's embedding ``[B, E]`` to the output
        layer's input (dropped out, ``[B, H]``), the new state and the attention weights ``[B, S]``."""
        x = self.dropout(emb)
        if self.input_feeding:
            x = torch.cat([x, state.feed], dim=-1)
        cells = []
        for i, cell in enumerate(self.decoder_cells):
            out, new = cell(cell.project(x), state.cells[i])
            cells.append(new)
            x = self.dropout(out) if i < len(self.decoder_cells) - 1 else out
        context, weights = self.attention(x, enc.keys, enc.memory, enc.mask)
        feed = torch.tanh(self.combine(torch.cat([context, x], dim=-1)))  # h~_t
        return self.dropout(feed), DecoderState(cells, feed), weights

    def project_vocab(self, h: Tensor) -> Tensor:
        """``[..., H] -> [..., V]`` logits."""
        weight, bias = self.output_layer()
        return gemm.linear(h, weight, bias)

    def output_layer(self) -> tuple[Tensor, Tensor | None]:
        """The output layer's ``(weight [V, H], bias [V])``: the target embedding with ``tie_embeddings``.
        The training loss applies it itself, slice by slice (:mod:`nlp_lib.modules.linear_cross_entropy`)."""
        if self.output is None:
            return self.tgt_embedding.weight, self.output_bias
        return self.output.weight, self.output.bias

    # ------------------------------------------------------------------ training

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> Seq2SeqOutput:
        """Logits for every position of ``tgt_in`` ``[B, T]`` (``BOS y_1 .. y_{T-1}``, padded).

        With ``teacher_forcing < 1`` in training, each position's input is, with probability
        ``1 - teacher_forcing``, the model's own prediction at the previous step instead of the gold token.
        """
        if not self.samples_own_outputs:  # teacher forcing: only the recurrence runs per step, the output layer once
            hidden, attn = self.decode_hidden(src, src_lengths, tgt_in)
            return Seq2SeqOutput(self.project_vocab(hidden), attn)
        enc, state = self.encode(src, src_lengths)
        logits, attn = [], []
        y = tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            if t > 0:  # scheduled sampling: the previous prediction in place of the gold token
                y = tgt_in[:, t]
                own = logits[-1].detach().argmax(-1)
                keep = torch.rand(y.shape, device=y.device) < self.teacher_forcing
                y = torch.where(keep | (y == PAD), y, own)
            out, state, w = self.step(y, state, enc)
            logits.append(out)
            attn.append(w)
        return Seq2SeqOutput(torch.stack(logits, dim=1), torch.stack(attn, dim=1))

    @property
    def samples_own_outputs(self) -> bool:
        """True in training with ``teacher_forcing < 1``: each step may read the previous step's logits."""
        return self.training and self.teacher_forcing < 1.0

    def decode_hidden(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor) -> tuple[Tensor, Tensor]:
        """The teacher-forced decoder up to the output layer: ``(hidden [B, T, H], attention [B, T, S])``.

        Target embeddings are looked up once; the recurrence (cells, attention, input feeding) runs
        step by step with the same operations as :meth:`step`, in the same order (dropout masks
        included); the output layer is left to the caller (:meth:`project_vocab`, or the loss).
        Not for scheduled sampling (:attr:`samples_own_outputs`), which needs each step's logits.
        """
        enc, state = self.encode(src, src_lengths)
        emb = self.tgt_embedding(tgt_in).transpose(0, 1)  # [T, B, E]: unbind's gradient is one stack
        outs, weights = [], []
        for e in emb.unbind(0):
            out, state, w = self.step_hidden(e, state, enc)
            outs.append(out)
            weights.append(w)
        return torch.stack(outs, dim=1), torch.stack(weights, dim=1)
