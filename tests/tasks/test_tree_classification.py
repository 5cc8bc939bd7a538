"""TreeClassificationTask's loss: the root labels, plus a weighted mean over the other labelled nodes."""

import functools

import torch
import torch.nn.functional as F

from nlp_lib.cells import NaryTreeLSTMCell
from nlp_lib.models import TreeClassifier
from nlp_lib.structure import TreeBatch, parse_ptb
from nlp_lib.tasks import TreeClassificationTask

TREES = ["(3 (2 It) (4 (3 works) (2 .)))", "(1 (1 Not) (2 (2 at) (2 all)))", "(0 bad)"]


def _setup(node_loss_weight, node_logits=True):
    trees = [parse_ptb(t) for t in TREES]
    vocab = {w: i for i, w in enumerate(sorted({w for t in trees for w in t.words if w}))}
    labels = [list(t.labels) for t in trees]
    labels[1][labels[1].index(2)] = -1  # one phrase without a label
    batch = TreeBatch.from_arrays(
        [t.parent for t in trees], [[vocab[w] if w else -1 for w in t.words] for t in trees], labels
    )
    torch.manual_seed(0)
    model = TreeClassifier(
        vocab_size=len(vocab), num_classes=5, cell=NaryTreeLSTMCell(6, 5), node_logits=node_logits
    ).double()
    task = TreeClassificationTask(
        model=model, optimizer=functools.partial(torch.optim.SGD, lr=0.1), node_loss_weight=node_loss_weight
    )
    return task, batch


def test_root_loss_only_by_default():
    task, batch = _setup(0.0)
    loss, logits, targets = task.loss_and_targets(batch)
    out = task.model(batch)
    assert targets.tolist() == [3, 1, 0]
    torch.testing.assert_close(logits, out.logits)
    torch.testing.assert_close(loss, F.cross_entropy(out.logits, targets))
    assert task.count(batch) == (3, batch.num_nodes)


def test_node_loss_adds_the_weighted_mean_over_labelled_non_root_nodes():
    task, batch = _setup(0.5)
    loss, _, targets = task.loss_and_targets(batch)
    out = task.model(batch)
    mask = batch.labels >= 0
    mask[batch.roots] = False
    assert int(mask.sum()) == batch.num_nodes - 3 - 1  # neither the roots nor the unlabelled phrase
    expected = F.cross_entropy(out.logits, targets) + 0.5 * F.cross_entropy(out.node_logits[mask], batch.labels[mask])
    torch.testing.assert_close(loss, expected)


def test_a_model_without_node_logits_trains_on_its_roots():
    task, batch = _setup(0.5, node_logits=False)
    loss, logits, targets = task.loss_and_targets(batch)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets))
