"""LightningModule for sequence-to-sequence models: label-smoothed loss, decoding, exact match, BLEU, chrF."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from nlp_lib.constraints import FiniteFloat, PositiveInt, Probability
from nlp_lib.models.decoding import OutputPrecision, beam_search, greedy
from nlp_lib.models.seq2seq import PAD, Seq2Seq
from nlp_lib.modules.linear_cross_entropy import linear_cross_entropy
from nlp_lib.structure.seq2seq import Seq2SeqBatch
from nlp_lib.tasks.base import OptimizerFactory, SchedulerFactory, TaskBase

__all__ = ["Seq2SeqTask", "decode_batch", "score_outputs", "token_loss"]


def token_loss(
    model: Seq2Seq, batch: Seq2SeqBatch, label_smoothing: Probability = 0.0, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Teacher-forced cross-entropy over the real target tokens: ``(loss, predicted ids [N], gold ids [N])``.

    With teacher forcing (the default) the output layer and the loss run together over the real
    target positions only, slice by slice of the vocabulary
    (:func:`~nlp_lib.modules.linear_cross_entropy.linear_cross_entropy`: the same loss and gradients
    as the logits through ``F.cross_entropy``, without the ``[B, T, V]`` logits); scheduled sampling
    and ``reduction="none"`` go through the full logits.
    """
    if reduction == "mean" and not model.samples_own_outputs:
        hidden, _ = model.decode_hidden(batch.src, batch.src_lengths, batch.tgt_in)  # [B, T, H]
        weight, bias = model.output_layer()
        out = linear_cross_entropy(
            hidden, weight, bias, batch.tgt_out, ignore_index=PAD, label_smoothing=label_smoothing
        )
        return out.loss, out.predicted, out.target
    logits = model(batch.src, batch.src_lengths, batch.tgt_in).logits  # [B, T, V]
    flat, gold = logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1)
    loss = F.cross_entropy(flat, gold, ignore_index=PAD, label_smoothing=label_smoothing, reduction=reduction)
    real = gold != PAD
    return loss, flat.detach().argmax(-1)[real], gold[real]


def score_outputs(hyps: list[str], refs: list[str], bleu_tokenize: str = "13a") -> dict[str, float]:
    """Exact match (share of outputs whose words equal the reference's), sacrebleu's corpus BLEU and chrF."""
    import sacrebleu

    if not hyps:
        return {}
    return {
        "exact_match": sum(h.split() == r.split() for h, r in zip(hyps, refs, strict=True)) / len(hyps),
        "bleu": float(sacrebleu.corpus_bleu(hyps, [refs], tokenize=bleu_tokenize).score),
        "chrf": float(sacrebleu.corpus_chrf(hyps, [refs]).score),
    }


def decode_batch(
    model: Seq2Seq,
    batch: Seq2SeqBatch,
    beam_size: PositiveInt,
    max_length: PositiveInt,
    length_penalty: FiniteFloat = 1.0,
    output_precision: OutputPrecision = "full",
) -> list[list[int]]:
    """Each sentence's best output (token ids): greedy for ``beam_size <= 1``, else beam search."""
    if beam_size <= 1:
        return greedy(model, batch.src, batch.src_lengths, max_length=max_length, output_precision=output_precision)
    hyps = beam_search(
        model,
        batch.src,
        batch.src_lengths,
        beam_size=beam_size,
        max_length=max_length,
        length_penalty=length_penalty,
        output_precision=output_precision,
    )
    return [h[0].tokens for h in hyps]


class Seq2SeqTask(TaskBase):
    """Teacher-forced cross-entropy in training; decoded outputs scored in validation and test.

    Validation decodes greedily (cheap, every epoch), test with beam search. Logged per split:
    ``loss`` (teacher-forced, per target token), ``accuracy`` (teacher-forced next-token accuracy),
    ``exact_match`` (share of outputs equal to the reference), and ``bleu`` / ``chrf``
    (``sacrebleu``'s corpus BLEU and chrF on detokenized outputs against the raw references).

    Args:
        model: A :class:`~nlp_lib.models.Seq2Seq`.
        optimizer / scheduler: See :class:`~nlp_lib.tasks.base.TaskBase`.
        label_smoothing: Label smoothing of the training loss.
        val_beam_size: Beam size for validation (1: greedy).
        test_beam_size: Beam size for test.
        length_penalty: Beam search's length normalisation exponent.
        max_length: Longest output decoded.
        bleu_tokenize: sacrebleu's tokenizer (``13a``; ``none`` for pre-tokenized text).
        output_precision: The output layer's product when decoding: ``"full"`` (exact) or
            ``"bfloat16"`` (faster on CPUs with AVX512-BF16 or AMX; see
            :data:`nlp_lib.models.decoding.OutputPrecision`).
    """

    example_name = "sentences"
    unit_name = "tokens"

    def __init__(
        self,
        *,
        model: Seq2Seq,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        label_smoothing: Probability = 0.0,
        val_beam_size: PositiveInt = 1,
        test_beam_size: PositiveInt = 5,
        length_penalty: FiniteFloat = 1.0,
        max_length: PositiveInt = 100,
        bleu_tokenize: str = "13a",
        output_precision: OutputPrecision = "full",
    ) -> None:
        super().__init__(model=model, optimizer=optimizer, scheduler=scheduler)
        self.label_smoothing = label_smoothing
        self.beam_sizes = {"val": val_beam_size, "test": test_beam_size}
        self.length_penalty = length_penalty
        self.max_length = max_length
        self.bleu_tokenize = bleu_tokenize
        self.output_precision = output_precision
        self.target_tokenizer: Any = None  # set from the datamodule at fit/test start
        self._outputs: dict[str, list[tuple[str, str]]] = {"val": [], "test": []}

    def _tokenizer(self) -> Any:
        if self.target_tokenizer is None:
            dm = getattr(self.trainer, "datamodule", None)
            self.target_tokenizer = dm.tokenizers["target"]
        return self.target_tokenizer

    def _loss(self, batch: Seq2SeqBatch, split: str) -> torch.Tensor:
        loss, pred, gold = token_loss(self.model, batch, self.label_smoothing if split == "train" else 0.0)
        n = int(gold.numel())
        acc = (pred == gold).float().mean()
        self.log(
            f"{split}/loss", loss, batch_size=n, on_step=split == "train", on_epoch=True, prog_bar=True, sync_dist=True
        )
        self.log(f"{split}/accuracy", acc, batch_size=n, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: Seq2SeqBatch, batch_idx: int) -> torch.Tensor:
        self.add_throughput(len(batch), batch.num_target_tokens)
        return self._loss(batch, "train")

    def _eval_step(self, batch: Seq2SeqBatch, split: str) -> None:
        self._loss(batch, split)
        tok = self._tokenizer()
        ids = decode_batch(
            self.model, batch, self.beam_sizes[split], self.max_length, self.length_penalty, self.output_precision
        )
        self._outputs[split] += [(tok.decode(i), ref) for i, ref in zip(ids, batch.references, strict=True)]

    def validation_step(self, batch: Seq2SeqBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Seq2SeqBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _epoch_scores(self, split: str) -> None:
        pairs, self._outputs[split] = self._outputs[split], []
        if self.trainer.world_size > 1:  # every rank's outputs: corpus BLEU is not a mean of parts
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, pairs)
            pairs = [p for part in gathered for p in part]
        scores = score_outputs([h for h, _ in pairs], [r for _, r in pairs], self.bleu_tokenize)
        for name, value in scores.items():  # equal on every rank
            self.log(f"{split}/{name}", value, prog_bar=name != "chrf", sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._epoch_scores("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_scores("test")
