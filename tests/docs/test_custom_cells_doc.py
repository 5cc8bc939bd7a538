"""docs/custom_cells.md's worked example runs as written, and its cell passes the equivalence check."""

import torch
from conftest import exec_doc

from nlp_lib.modules import check_cell
from nlp_lib.structure.random_trees import random_binary_tree


def _doc_namespace() -> dict:
    return exec_doc("docs/custom_cells.md")


def test_worked_example_runs_and_agrees_with_one_at_a_time():
    ns = _doc_namespace()
    assert ns["out"].logits.shape == (2, 5)
    cell = ns["ChildAttentionCell"](5, 7)
    check_cell(cell)  # random trees and DAGs, outputs and every gradient
    check_cell(cell, direction="down")


def test_worked_example_trains_in_a_tree_classifier():
    ns = _doc_namespace()
    import random

    from nlp_lib.models import TreeClassifier
    from nlp_lib.structure import TreeBatch

    rng = random.Random(0)
    trees = [random_binary_tree(rng.randint(1, 20), rng, 30) for _ in range(16)]
    batch = TreeBatch.from_arrays(
        [t.parent for t in trees], [[int(w[1:]) if w else -1 for w in t.words] for t in trees]
    )
    target = torch.tensor([len(t) % 2 for t in trees])
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=30, num_classes=2, cell=ns["ChildAttentionCell"](8, 16))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(batch).logits, target)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
