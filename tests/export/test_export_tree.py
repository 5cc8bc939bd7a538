"""nlp_lib.export.tree: one tree graph serves every tree shape; OnnxChildren computes what Children does."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import (  # noqa: E402
    Children,
    ChildSumTreeGRUCell,
    ChildSumTreeLSTMCell,
    NaryTreeLSTMCell,
    RecursiveNNCell,
    TreeLSTMState,
)
from nlp_lib.export import export_onnx, tree_inputs  # noqa: E402
from nlp_lib.export.tree import OnnxChildren  # noqa: E402
from nlp_lib.models import TreeClassifier  # noqa: E402
from nlp_lib.structure import TreeBatch  # noqa: E402


@pytest.mark.parametrize(
    "cell",
    [NaryTreeLSTMCell(6, 8, arity=2), ChildSumTreeLSTMCell(6, 8), ChildSumTreeGRUCell(6, 8), RecursiveNNCell(6, 8)],
    ids=["nary", "childsum", "treegru", "recursive"],
)
def test_tree_classifier_onnx_serves_every_tree_shape(tmp_path, cell):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20, num_classes=3, cell=cell, dropout=0.5).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_depth=12)
    assert manifest["max_abs_diff"] <= 1e-4
    assert ("edge_slot" in manifest["inputs"]) == hasattr(cell, "arity")  # child-sum cells: unordered children
    # one exported graph, three batches of different shapes: a lone leaf, a chain-like tree, a mix
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    parents = [[-1], [2, 2, 4, 4, 6, 6, -1], [2, 2, -1], [2, 2, 4, 4, -1]]
    tokens = [[3], [1, 2, -1, 5, -1, 7, -1], [4, 9, -1], [1, 1, 8, 2, 19]]
    for batch in ([0], [1, 2], [0, 1, 2, 3]):
        inputs = tree_inputs([parents[i] for i in batch], [tokens[i] for i in batch])
        got = session.run(None, {k: v for k, v in inputs.items() if k in manifest["inputs"]})[0]
        with torch.no_grad():
            expected = model(TreeBatch.from_arrays([parents[i] for i in batch], [tokens[i] for i in batch])).logits
        assert np.abs(got - expected.numpy()).max() <= 1e-4


class MeanMaxCell(torch.nn.Module):
    """A user's tree cell reading its children through Children.mean and Children.max."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.lin = torch.nn.Linear(input_size + 2 * hidden_size, hidden_size)

    def forward(self, x, children):
        from nlp_lib.cells.base import RecursiveState

        if not children:
            z = x.new_zeros(x.shape[0], 2 * self.hidden_size)
        else:
            z = torch.cat([children.mean(children.h), children.max(children.h)], -1)
        return RecursiveState(torch.tanh(self.lin(torch.cat([x, z], -1))))


def test_a_users_tree_cell_with_mean_and_max_exports(tmp_path):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20, num_classes=3, cell=MeanMaxCell(6, 8))
    assert export_onnx(model, tmp_path / "onnx", max_depth=12)["max_abs_diff"] <= 1e-4


@pytest.mark.parametrize("down", [NaryTreeLSTMCell(8, 5), ChildSumTreeLSTMCell(8, 5)], ids=["nary", "childsum"])
def test_bidirectional_tree_models_export_their_top_down_pass(tmp_path, down):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20, num_classes=3, cell=NaryTreeLSTMCell(6, 8), down_cell=down).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_depth=10)
    assert manifest["max_abs_diff"] <= 1e-4 and "depth" in manifest["inputs"]


@pytest.mark.parametrize(
    "parent, slot, nodes",
    [
        ([0, 0, 2, 2, 2, 4], [0, 1, 0, 1, 2, 0], 6),  # nodes 1, 3 and 5 without children
        ([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], 3),  # every node has all 3 slots' worth: Children reshapes
        ([], [], 2),  # no edges
    ],
    ids=["gaps", "full", "empty"],
)
def test_onnx_children_compute_what_children_do(parent, slot, nodes):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(len(parent), 4, generator=g) - 2  # mostly negative: a maximum must not start from 0
    c = torch.randn(len(parent), 4, generator=g)
    args = (TreeLSTMState(h, c), torch.tensor(parent, dtype=torch.long), torch.tensor(slot, dtype=torch.long), nodes)
    plain, onnx = Children(*args), OnnxChildren(*args)
    assert torch.equal(plain.count, onnx.count)
    torch.testing.assert_close(onnx.sum(onnx.h), plain.sum(plain.h))
    torch.testing.assert_close(onnx.mean(onnx.c), plain.mean(plain.c))
    assert torch.equal(onnx.max(onnx.h), plain.max(plain.h))
    assert torch.equal(onnx.slots(onnx.h, 3), plain.slots(plain.h, 3))
    assert torch.equal(onnx.broadcast(torch.arange(nodes)), plain.broadcast(torch.arange(nodes)))
    assert bool(onnx) == bool(plain) and onnx.h is plain.h
    if parent:
        with pytest.raises(ValueError, match="more than 1 children"):
            onnx.slots(onnx.h, 1)


def test_a_model_whose_roots_take_two_of_three_classes_exports_two_columns(tmp_path):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20, num_classes=3, root_classes=2, cell=NaryTreeLSTMCell(6, 8)).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_depth=10, labels=["neg", "pos", "neutral"])
    assert manifest["max_abs_diff"] <= 1e-4 and manifest["labels"] == ["neg", "pos"]  # the logits' columns
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs = tree_inputs([[2, 2, -1]], [[4, 9, -1]])
    assert session.run(None, {k: v for k, v in inputs.items() if k in manifest["inputs"]})[0].shape == (1, 2)
