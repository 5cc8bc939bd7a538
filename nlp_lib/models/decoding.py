"""Decoding for :class:`~nlp_lib.models.seq2seq.Seq2Seq`: greedy and batched beam search.

Beam search runs **every sentence and every beam of a batch in one tensor program**: the decoder
steps ``[A * k]`` rows at once (``A`` sentences still decoding, ``k`` beams each; the first step one
row per sentence, since its beams all start from the same state), the output layer
runs by vocabulary slices and keeps each row's ``2k`` best tokens (no ``[A * k, V]`` log-softmax is
formed: only a row's own best ``2k`` can be among its sentence's best ``2k``), one ``topk`` over each
sentence's ``k * 2k`` candidates picks the next beams, and a sentence whose search is over is
*retired*: its rows leave the tensors, so the rest of the batch goes on with less work instead of
waiting for it. The search's bookkeeping (finished hypotheses, token histories, which sentences
are done) runs on the host from **one** device-to-host copy per step; greedy decoding copies
nothing back until it ends (:func:`greedy_ids`).

The search, per sentence (the same rules whether a sentence is decoded alone or in a batch, so both
give the same hypotheses; a test checks it):

* each step takes the ``2k`` best continuations of the ``k`` live beams; an end-of-sentence among
  the first ``k`` of them finishes a hypothesis; the best ``k`` that do not end continue;
* a finished hypothesis scores ``log p(y) / len(y) ** length_penalty`` (``len`` counts the end
  token; ``length_penalty=0`` ranks by raw log-probability, 1 by the mean per token);
* a sentence is done when it has ``n_best`` finished hypotheses and no live beam can beat the
  ``n_best``-th of them any more (a live beam's log-probability only falls, and its length is at most
  ``max_length``, which bounds its final score: the search is exact in that sense, not a heuristic), or
  at ``max_length`` (its live beams are then finished as they are);
* the result is its ``n_best`` finished hypotheses, best first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from nlp_lib.constraints import FiniteFloat, PositiveInt
from nlp_lib.models.seq2seq import BOS, EOS, DecoderState, Encoded, Seq2Seq
from nlp_lib.modules.linear_cross_entropy import SliceBuffers, linear_logits, linear_top_log_probs, slice_width

__all__ = [
    "Hypothesis",
    "OutputPrecision",
    "beam_search",
    "beam_search_one_by_one",
    "bf16_is_native",
    "greedy",
    "greedy_ids",
]

OutputPrecision = Literal["full", "bfloat16"]
"""The output layer's product in decoding: ``"full"``, the model's own precision (the default: the
exact search), or ``"bfloat16"``, a bfloat16 copy of the output weight times the hidden state cast to
bfloat16. The bias, log-softmax, scores and everything else stay in the model's precision. The
product is most of a decoding step's work on a big vocabulary; in bfloat16 it runs ~3x faster on a
CPU with AVX512-BF16 or AMX (and on GPUs), and *slower* on CPUs without them (a warning says so).
An approximation: logits move by ~1e-2, so near-ties between hypotheses may resolve differently;
``scripts/bench/beam_precision.py`` measures BLEU both ways on a trained model."""


@dataclass
class Hypothesis:
    """A finished output: ``tokens`` (ids, without the end token), ``score`` (length-normalised) and ``log_prob``."""

    tokens: list[int]
    score: float
    log_prob: float


def _check_lengths(min_length: int, max_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    if not 0 <= min_length <= max_length:
        raise ValueError(f"min_length must be between 0 and max_length ({max_length}), got {min_length}")


def _output_layer(model: Seq2Seq, precision: OutputPrecision) -> tuple[Tensor, Tensor | None]:
    """The output layer's ``(weight, bias)`` for decoding in ``precision`` (:data:`OutputPrecision`):
    the model's own, or with the weight copied to bfloat16 once per call."""
    if precision not in ("full", "bfloat16"):
        raise ValueError(f"output_precision must be 'full' or 'bfloat16', got {precision!r}")
    weight, bias = model.output_layer()
    if precision == "full" or weight.dtype == torch.bfloat16:
        return weight, bias
    if not _standard_output(model):
        raise ValueError(
            f"output_precision='bfloat16' needs Seq2Seq's own step and project_vocab; {type(model).__name__} "
            "overrides one (decode it with output_precision='full')"
        )
    if not bf16_is_native(weight.device):
        warnings.warn(
            "output_precision='bfloat16' on a CPU without AVX512-BF16 or AMX instructions: the bfloat16 "
            "product runs slower than the full-precision one here",
            stacklevel=3,
        )
    return weight.detach().to(torch.bfloat16), bias


def _standard_output(model: Seq2Seq) -> bool:
    """Whether ``model``'s logits are Seq2Seq's own (``step`` and ``project_vocab`` not overridden), so
    decoding may apply the output layer itself (by slices, into reused memory, in bfloat16)."""
    return type(model).step is Seq2Seq.step and type(model).project_vocab is Seq2Seq.project_vocab


def bf16_is_native(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively: a GPU, or a CPU with AVX512-BF16 or AMX
    (elsewhere a bfloat16 product is emulated and slower than float32)."""
    if device.type != "cpu":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _best_continuations(
    model: Seq2Seq,
    y: Tensor,
    state: DecoderState,
    enc: Encoded,
    scores: Tensor,
    block_end: bool,
    output: tuple[Tensor, Tensor | None],
    k: int,
    buffers: SliceBuffers,
) -> tuple[Tensor, Tensor, Tensor, DecoderState]:
    """One decoder step for every row, then each sentence's ``2k`` best (beam, token) continuations:
    ``(scores [A, 2k], their beams [A, 2k], their tokens [A, 2k], the new state)``. ``scores``
    ``[A, L]``: the ``L`` live beams of each sentence (``k``, or one at the first step); the rows of
    ``y`` and ``state`` are the ``A * L`` beams, sentence by sentence.

    Only a row's own ``2k`` best tokens can be among its sentence's ``2k`` best, so the output layer
    runs by vocabulary slices and keeps each row's ``2k`` best log-probabilities
    (:func:`~nlp_lib.modules.linear_cross_entropy.linear_top_log_probs`); no ``[A*k, V]``
    log-softmax is formed. Where the whole vocabulary is one slice (small vocabularies, a GPU) or
    the model's ``step`` or ``project_vocab`` is its own (a subclass that overrides one), ``step`` and
    ``log_softmax`` run instead: the same values with fewer operations. ``output``: the output layer's ``(weight, bias)``
    (:func:`_output_layer`; a bfloat16 weight always takes the sliced path). ``buffers``: the
    slices' scratch memory, one for the whole search.
    """
    a, live = scores.shape
    weight, bias = output
    width = slice_width(len(y), weight.shape[0], weight.device)
    own_dtype = weight.dtype == enc.memory.dtype
    if _standard_output(model) and (width < weight.shape[0] or not own_dtype):
        h, state, _ = model.step_hidden(model.tgt_embedding(y), state, enc)
        blocked = EOS if block_end else None
        logp, ids = linear_top_log_probs(h, weight, bias, 2 * k, blocked=blocked, slice_width=width, buffers=buffers)
    else:  # a small vocabulary (one slice), or a model with its own step or project_vocab
        logits, state, _ = model.step(y, state, enc)
        if logits.dtype in (torch.float16, torch.bfloat16):  # sums of log-probabilities in full precision
            logits = logits.float()
        full = torch.log_softmax(logits, dim=-1)
        if block_end:
            full[:, EOS] = float("-inf")
        logp, ids = full.topk(min(2 * k, full.shape[1] - block_end), dim=1)
    c = logp.shape[1]  # candidates per row
    cand = (scores.view(a * live, 1) + logp.to(scores.dtype)).view(a, live * c)
    values, flat = cand.topk(min(2 * k, live * c), dim=1)
    return values, flat // c, ids.view(a, live * c).gather(1, flat), state


def _select_encoded(enc: Encoded, index: Tensor) -> Encoded:
    return Encoded(*(t.index_select(0, index) for t in enc))


class _AllDone:
    """Whether every sentence has ended, learnt without stalling the device.

    Each step queues a copy of the device flag into (pinned) host memory; the loop reads the host
    copy only once that copy has landed (a CUDA event says so), so on a GPU the loop stops a step
    or two late instead of waiting for every step's kernels. On the CPU the flag is read at once.
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.host = torch.zeros(1, dtype=torch.bool, pin_memory=self.cuda)
        self.event = torch.cuda.Event() if self.cuda else None
        self.queued = False

    def push(self, done: Tensor) -> None:
        """Queue ``done.all()`` (unless the previous copy is still on its way)."""
        if self.cuda and self.queued and not self.event.query():
            return
        self.host.copy_(done.all().view(1), non_blocking=True)
        if self.cuda:
            self.event.record()
        self.queued = True

    def seen(self) -> bool:
        """True once a landed copy says every sentence has ended."""
        if not self.queued or (self.cuda and not self.event.query()):
            return False
        return bool(self.host.numpy()[0])  # host memory, already written: no device copy


@torch.no_grad()
def greedy_ids(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_length: PositiveInt = 100,
    min_length: int = 0,
    output_precision: OutputPrecision = "full",
) -> Tensor:
    """Greedy decoding as one device tensor ``[B, T]`` (``T <= max_length``), with no host sync per step.

    Rows run on past their end token (the caller cuts them there); the loop stops when every row
    has ended (seen a step or two late on a GPU) or after ``max_length`` steps.
    ``output_precision``: see :data:`OutputPrecision`.
    """
    _check_lengths(min_length, max_length)
    weight, bias = _output_layer(model, output_precision)
    standard = _standard_output(model)  # then the output layer runs here, into reused memory
    buffers = SliceBuffers()
    enc, state = model.encode(src, src_lengths)
    b = src.shape[0]
    y = torch.full((b,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(b, dtype=torch.bool, device=src.device)
    stop = _AllDone(src.device)
    out = []
    for t in range(max_length):
        if standard:
            h, state, _ = model.step_hidden(model.tgt_embedding(y), state, enc)
            logits = linear_logits(h, weight, bias, buffers=buffers)  # into reused memory: no fresh pages
        else:
            logits, state, _ = model.step(y, state, enc)
        if t < min_length:
            logits[:, EOS] = float("-inf")
        y = logits.argmax(-1)
        out.append(y)
        done |= y == EOS
        stop.push(done)
        if stop.seen():
            break
    return torch.stack(out, dim=1)


def greedy(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_length: PositiveInt = 100,
    min_length: int = 0,
    output_precision: OutputPrecision = "full",
) -> list[list[int]]:
    """The most likely next token at every step, for the whole batch at once; token ids without the end token.

    ``min_length``: the end token is not chosen before so many tokens (``max_length`` is the most).
    The tokens come to the host once, at the end (:func:`greedy_ids`). ``output_precision``: see
    :data:`OutputPrecision`.
    """
    steps = greedy_ids(
        model, src, src_lengths, max_length=max_length, min_length=min_length, output_precision=output_precision
    ).tolist()
    return [row[: row.index(EOS)] if EOS in row else row for row in steps]


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    *,
    beam_size: PositiveInt = 5,
    max_length: PositiveInt = 100,
    length_penalty: FiniteFloat = 1.0,
    n_best: PositiveInt = 1,
    min_length: int = 0,
    output_precision: OutputPrecision = "full",
) -> list[list[Hypothesis]]:
    """Batched beam search (see the module docstring): per sentence, its ``n_best`` hypotheses, best first.

    ``min_length``: no hypothesis ends before so many tokens (the end token not counted, as
    ``max_length``); ``min_length == max_length`` decodes every sentence to exactly that length.
    ``output_precision``: the output layer's product in the model's precision (``"full"``, exact) or
    in ``"bfloat16"`` (faster where the hardware has it; see :data:`OutputPrecision`).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best}")
    _check_lengths(min_length, max_length)
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty}")
    output = _output_layer(model, output_precision)
    buffers = SliceBuffers()  # the output layer's scratch memory, for every step
    k = beam_size
    device = src.device
    b = src.shape[0]
    first, state = model.encode(src, src_lengths)
    rows = torch.arange(b, device=device).repeat_interleave(k)
    enc = _select_encoded(first, rows)  # every sentence's encoding, k times: a row per beam
    # Every sentence starts from one beam (no duplicate hypotheses). The first step runs one row per
    # sentence, which yields 2k candidates when the vocabulary has more than 2k tokens; else it
    # runs k rows, the k - 1 extra beams scored -inf.
    live = 1 if output[0].shape[0] > 2 * k else k
    if live == k:
        first, state = enc, state.select(rows)
    alive = list(range(b))  # original index of each sentence still decoding
    dtype = torch.float32 if enc.memory.dtype in (torch.float16, torch.bfloat16) else enc.memory.dtype
    scores = torch.full((b, live), float("-inf"), device=device, dtype=dtype)
    scores[:, 0] = 0.0
    hist = np.empty((b * live, 0), dtype=np.int64)  # tokens so far, per row: kept on the host
    y = torch.full((b * live,), BOS, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    for t in range(max_length):
        a, live = scores.shape  # live beams per sentence before this step: k, or 1 at the first
        values, beam, tok, state = _best_continuations(
            model, y, state, first if t == 0 else enc, scores, t < min_length, output, k, buffers
        )  # [A, 2k]
        length = t + 1
        # end-of-sentence among each sentence's k best continuations: finished hypotheses
        ends = (tok[:, :k] == EOS) & torch.isfinite(values[:, :k])
        # the k best continuations that do not end carry on (at most k of the 2k end: one per beam)
        go = tok != EOS
        go &= torch.cumsum(go, dim=1) <= k
        sel = go.to(torch.int8).argsort(dim=1, descending=True, stable=True)[:, :k]  # [A, k], in rank order
        scores = values.gather(1, sel)
        origin = (torch.arange(a, device=device).unsqueeze(1) * live + beam.gather(1, sel)).view(-1)  # [A*k]
        y = tok.gather(1, sel).view(-1)
        state = state.select(origin)
        # The best score any live beam could still reach: its log-probability only falls, and a
        # length of at most max_length divides it by at most max_length ** length_penalty.
        reach = scores.max(dim=1).values / float(max_length) ** length_penalty
        # The step's one device-to-host copy: all the bookkeeping below reads these host arrays.
        parts = [ends, values[:, :k], beam[:, :k], origin, y, scores, reach]
        host = torch.cat([p.reshape(-1).to(torch.float64) for p in parts]).cpu().numpy()
        h_ends, h_values, h_beam, h_origin, h_y, h_scores, h_reach = np.split(
            host, np.cumsum([p.numel() for p in parts])[:-1]
        )
        h_values, h_scores = h_values.reshape(a, k), h_scores.reshape(a, k)
        for i, j in zip(*np.nonzero(h_ends.reshape(a, k)), strict=True):
            lp = float(h_values[i, j])
            src_row = i * live + int(h_beam[i * k + j])
            finished[alive[i]].append(Hypothesis(hist[src_row].tolist(), lp / length**length_penalty, lp))
        hist = np.concatenate([hist[h_origin.astype(np.int64)], h_y.astype(np.int64)[:, None]], axis=1)
        last = t == max_length - 1
        keep = []
        for i, s in enumerate(alive):
            if last:  # out of steps: the live beams are finished as they are
                for j in range(k):
                    lp = float(h_scores[i, j])
                    if lp > float("-inf"):
                        finished[s].append(Hypothesis(hist[i * k + j].tolist(), lp / length**length_penalty, lp))
            elif len(finished[s]) < n_best or h_reach[i] > sorted(h.score for h in finished[s])[-n_best]:
                keep.append(i)
        if len(keep) < a:  # retire the sentences that are done: their rows leave every tensor
            if not keep:
                break
            kept = torch.tensor(keep).to(device, non_blocking=True)
            row_idx = (kept.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            enc, state = _select_encoded(enc, row_idx), state.select(row_idx)
            y, scores = y.index_select(0, row_idx), scores.index_select(0, kept)
            hist = hist[(np.asarray(keep)[:, None] * k + np.arange(k)).reshape(-1)]
            alive = [alive[i] for i in keep]
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]


def beam_search_one_by_one(model: Seq2Seq, src: Tensor, src_lengths: Tensor, **kwargs) -> list[list[Hypothesis]]:
    """The same search, one sentence at a time (the reference the batched search is checked and timed against)."""
    out = []
    for i in range(src.shape[0]):
        n = int(src_lengths[i])
        out.extend(beam_search(model, src[i : i + 1, :n], src_lengths[i : i + 1], **kwargs))
    return out
