"""Seq2SeqTask stepped by hand (no Trainer): the teacher-forced loss, decoding, and the epoch's scores."""

import functools
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from nlp_lib.models import Seq2Seq
from nlp_lib.models.decoding import beam_search, greedy
from nlp_lib.structure.seq2seq import PAD, Seq2SeqBatch
from nlp_lib.tasks import Seq2SeqTask
from nlp_lib.tasks.seq2seq import decode_batch, score_outputs, token_loss

WORDS = {i: f"w{i}" for i in range(4, 12)}


class _Words:
    """A target tokenizer: ids 4.. are words, the special ids decode to nothing."""

    def decode(self, ids):
        return " ".join(WORDS[i] for i in ids if i in WORDS)


class _Log:
    def __init__(self):
        self.values = {}

    def __call__(self, name, value, **kw):
        self.values[name] = value


def _model():
    torch.manual_seed(0)
    return Seq2Seq(src_vocab_size=12, tgt_vocab_size=12, embedding_size=8, hidden_size=8, dropout=0.0).double()


def _batch():
    src = [[4, 5, 6], [7], [8, 9]]
    tgt = [[6, 5, 4], [7, 7], [9]]
    return Seq2SeqBatch.from_ids(src, tgt, [" ".join(WORDS[i] for i in y) for y in tgt])


def test_token_loss_is_the_cross_entropy_over_real_target_tokens():
    model, batch = _model(), _batch()
    loss, pred, gold = token_loss(model, batch, label_smoothing=0.1)
    logits = model(batch.src, batch.src_lengths, batch.tgt_in).logits
    real = batch.tgt_out != PAD
    torch.testing.assert_close(loss, F.cross_entropy(logits[real], batch.tgt_out[real], label_smoothing=0.1))
    assert gold.tolist() == batch.tgt_out[real].tolist() and gold.numel() == batch.num_target_tokens
    assert pred.tolist() == logits[real].argmax(-1).tolist()
    total, _, _ = token_loss(model, batch, reduction="sum")
    torch.testing.assert_close(total, F.cross_entropy(logits[real], batch.tgt_out[real], reduction="sum"))


def test_decode_batch_is_greedy_for_a_beam_of_one_and_the_best_hypothesis_otherwise():
    model, batch = _model().eval(), _batch()
    assert decode_batch(model, batch, 1, 6) == greedy(model, batch.src, batch.src_lengths, max_length=6)
    best = [h[0].tokens for h in beam_search(model, batch.src, batch.src_lengths, beam_size=3, max_length=6)]
    assert decode_batch(model, batch, 3, 6) == best


def test_score_outputs():
    assert score_outputs([], []) == {}
    same = score_outputs(["a b c d", "e f g h"], ["a b c d", "e f g h"])
    assert same["exact_match"] == 1.0 and same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)
    half = score_outputs(["a b c d", "x"], ["a b c d", "e f g h"])
    assert half["exact_match"] == 0.5 and half["bleu"] < 100.0


@pytest.mark.parametrize("split", ["val", "test"])
def test_an_evaluation_epoch_logs_loss_accuracy_and_the_decoded_outputs_scores(split, monkeypatch):
    task = Seq2SeqTask(
        model=_model().eval(), optimizer=functools.partial(torch.optim.Adam), val_beam_size=1, test_beam_size=2
    )
    task.target_tokenizer = _Words()
    log = _Log()
    monkeypatch.setattr(task, "log", log)
    monkeypatch.setattr(task, "_trainer", SimpleNamespace(world_size=1))  # one process: nothing to gather
    batch = _batch()
    step, epoch_end = (
        (task.validation_step, task.on_validation_epoch_end)
        if split == "val"
        else (task.test_step, task.on_test_epoch_end)
    )
    with torch.no_grad():
        step(batch, 0)
        step(batch, 1)
        loss, pred, gold = token_loss(task.model, batch)
        epoch_end()
    torch.testing.assert_close(log.values[f"{split}/loss"], loss)
    torch.testing.assert_close(log.values[f"{split}/accuracy"], (pred == gold).float().mean())
    ids = decode_batch(task.model, batch, 1 if split == "val" else 2, task.max_length)
    hyps = [_Words().decode(i) for i in ids] * 2
    expected = score_outputs(hyps, batch.references * 2)
    assert {k: log.values[f"{split}/{k}"] for k in expected} == pytest.approx(expected)


def test_training_step_counts_sentences_and_target_tokens(monkeypatch):
    task = Seq2SeqTask(model=_model(), optimizer=functools.partial(torch.optim.Adam), label_smoothing=0.2)
    monkeypatch.setattr(task, "log", _Log())
    task.on_train_epoch_start()
    batch = _batch()
    loss = task.training_step(batch, 0)
    torch.testing.assert_close(loss, token_loss(task.model, batch, label_smoothing=0.2)[0])
    assert (task._epoch_examples, task._epoch_units) == (3, batch.num_target_tokens)


@pytest.mark.parametrize("tie", [False, True])
def test_token_loss_trains_as_the_logits_through_cross_entropy_did(tie):
    """The sliced loss (no [B, T, V] logits) = the logits through F.cross_entropy, in training with
    dropout: the same loss, predictions and gradients, the dropout masks drawn in the same order."""
    torch.manual_seed(0)
    model = (
        Seq2Seq(src_vocab_size=12, tgt_vocab_size=12, embedding_size=8, hidden_size=8, dropout=0.3, tie_embeddings=tie)
        .double()
        .train()
    )
    batch = _batch()
    runs = []
    for way in ("sliced", "logits"):
        torch.manual_seed(3)
        model.zero_grad()
        if way == "sliced":
            loss, pred, gold = token_loss(model, batch, label_smoothing=0.1)
        else:
            logits = model(batch.src, batch.src_lengths, batch.tgt_in).logits
            real = batch.tgt_out != PAD
            loss = F.cross_entropy(logits[real], batch.tgt_out[real], label_smoothing=0.1)
            pred, gold = logits[real].argmax(-1), batch.tgt_out[real]
        loss.backward()
        runs.append((loss.detach(), pred, gold, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss, pred, gold, grads), (ref, ref_pred, ref_gold, ref_grads) = runs
    torch.testing.assert_close(loss, ref, rtol=0, atol=1e-10)
    assert torch.equal(pred, ref_pred) and torch.equal(gold, ref_gold)
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, rtol=0, atol=1e-10, msg=name)


def test_token_loss_with_scheduled_sampling_goes_through_the_logits():
    torch.manual_seed(0)
    model = Seq2Seq(src_vocab_size=12, tgt_vocab_size=12, embedding_size=8, hidden_size=8, teacher_forcing=0.5)
    batch = _batch()
    assert model.train().samples_own_outputs and not model.eval().samples_own_outputs
    model.train()
    loss, _, gold = token_loss(model, batch)
    loss.backward()
    assert gold.numel() == batch.num_target_tokens and model.output.weight.grad is not None
