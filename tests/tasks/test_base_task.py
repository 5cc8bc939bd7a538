"""TaskBase and ClassificationTask, stepped by hand (no Trainer): loss, accuracy, throughput, optimisers, random streams."""

import functools

import pytest
import torch
import torch.nn.functional as F

from nlp_lib.cells import LSTMCell
from nlp_lib.models import SequenceClassifier
from nlp_lib.structure.sequence import SequenceBatch
from nlp_lib.tasks import SequenceClassificationTask

ADAM = functools.partial(torch.optim.Adam, lr=0.01)


def _task(dropout=0.0, scheduler=None):
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=12, num_classes=3, cell=LSTMCell, embedding_size=4, hidden_size=5, dropout=dropout
    )
    return SequenceClassificationTask(model=model, optimizer=ADAM, scheduler=scheduler)


def _batches():
    g = torch.Generator().manual_seed(1)
    out = []
    for lengths in ([3, 1, 4], [2, 5], [1, 1, 2, 3]):
        tokens = [torch.randint(1, 12, (n,), generator=g).tolist() for n in lengths]
        out.append(SequenceBatch.from_lists(tokens, torch.randint(0, 3, (len(lengths),), generator=g).tolist()))
    return out


class _Log:
    """Stands in for LightningModule.log: what a step logs, by name."""

    def __init__(self):
        self.values = {}

    def __call__(self, name, value, **kw):
        self.values[name] = (value, kw)


def test_training_step_returns_the_cross_entropy_and_counts_sequences_and_tokens(monkeypatch):
    task = _task()
    log = _Log()
    monkeypatch.setattr(task, "log", log)
    task.on_train_epoch_start()
    batches = _batches()
    for i, batch in enumerate(batches):
        loss = task.training_step(batch, i)
        torch.testing.assert_close(loss, F.cross_entropy(task.model(batch).logits, batch.labels))
    assert task._epoch_examples == sum(b.num_sequences for b in batches)
    assert task._epoch_units == sum(b.num_tokens for b in batches)
    value, kw = log.values["train/loss"]
    assert value is loss and kw["on_step"] and kw["on_epoch"] and kw["batch_size"] == batches[-1].num_sequences
    assert log.values["train/accuracy"][0] is task.metrics["train_acc"]


def test_validation_accuracy_is_over_every_sequence_of_the_epoch(monkeypatch):
    task = _task().eval()
    log = _Log()
    monkeypatch.setattr(task, "log", log)
    right = total = 0
    with torch.no_grad():
        for i, batch in enumerate(_batches()):
            task.validation_step(batch, i)
            right += int((task.model(batch).logits.argmax(-1) == batch.labels).sum())
            total += batch.num_sequences
    assert not log.values["val/loss"][1]["on_step"]
    assert float(log.values["val/accuracy"][0].compute()) == pytest.approx(right / total)
    assert float(task.metrics["train_acc"].update_count) == 0  # splits keep their own metric


def test_configure_optimizers_with_and_without_a_scheduler():
    opt = _task().configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["lr"] == 0.01
    step = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1)
    conf = _task(scheduler=step).configure_optimizers()
    assert isinstance(conf["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert (
        conf["lr_scheduler"]["interval"] == "epoch" and conf["optimizer"] is conf["lr_scheduler"]["scheduler"].optimizer
    )


def test_a_training_batch_draws_its_dropout_from_its_own_stream(monkeypatch):
    task = _task(dropout=0.5).train()
    monkeypatch.setattr(task, "log", _Log())
    batch = _batches()[0]

    def loss_at(batch_idx):
        task.on_train_batch_start(batch, batch_idx)
        try:
            return task.training_step(batch, batch_idx).detach()
        finally:
            task.on_train_batch_end(None, batch, batch_idx)

    first = loss_at(3)
    torch.rand(100)  # what anything else draws in between
    assert torch.equal(loss_at(3), first)
    assert not torch.equal(loss_at(4), first)
