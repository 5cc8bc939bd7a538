"""ONNX export: onnxruntime gives PyTorch's outputs (1e-4) for every exported model kind."""

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import (  # noqa: E402
    ChildSumTreeGRUCell,
    ChildSumTreeLSTMCell,
    GRUCell,
    LayerNormLSTMCell,
    LSTMCell,
    NaryTreeLSTMCell,
    RecursiveNNCell,
)
from nlp_lib.data.seq2seq import Seq2SeqBatch  # noqa: E402
from nlp_lib.export import ExportError, OnnxSeq2Seq, export_onnx, tree_inputs  # noqa: E402
from nlp_lib.models import Seq2Seq, SequenceClassifier, SequenceTagger, TreeClassifier  # noqa: E402
from nlp_lib.models.decoding import greedy  # noqa: E402
from nlp_lib.structure import TreeBatch  # noqa: E402


@pytest.mark.parametrize("cell, bidirectional, layers", [(LSTMCell, False, 1), (LayerNormLSTMCell, True, 2)])
def test_sequence_classifier_onnx_parity(tmp_path, cell, bidirectional, layers):
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=40,
        num_classes=4,
        cell=cell,
        embedding_size=8,
        hidden_size=12,
        bidirectional=bidirectional,
        num_layers=layers,
        pooling="mean",
    ).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_length=16)
    assert manifest["max_abs_diff"] <= 1e-4
    assert json.loads((tmp_path / "onnx" / "onnx.json").read_text())["kind"] == "sequence_classifier"
    assert (tmp_path / "onnx" / "model.onnx").stat().st_size > 0


def test_sequence_tagger_onnx_parity(tmp_path):
    torch.manual_seed(0)
    model = SequenceTagger(vocab_size=40, num_classes=5, cell=GRUCell, embedding_size=8, hidden_size=12).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_length=16)
    assert manifest["max_abs_diff"] <= 1e-4 and manifest["kind"] == "sequence_tagger"
    assert "max_length, num_classes" in manifest["outputs"]["logits"]


@pytest.mark.parametrize(
    "attention, cell, decoder_cell, layers",
    [("general", LSTMCell, None, 1), ("additive", GRUCell, LayerNormLSTMCell, 2), ("dot", LSTMCell, GRUCell, 1)],
)
def test_seq2seq_onnx_parity_and_greedy_decoding(tmp_path, attention, cell, decoder_cell, layers):
    torch.manual_seed(0)
    model = Seq2Seq(
        src_vocab_size=30,
        tgt_vocab_size=25,
        cell=cell,
        decoder_cell=decoder_cell,
        embedding_size=8,
        hidden_size=12,
        num_layers=layers,
        attention=attention,
        dropout=0.3,  # eval mode: no dropout in the graphs
    )
    manifest = export_onnx(model, tmp_path / "onnx", max_length=10)
    assert manifest["max_abs_diff"] <= 1e-4
    assert manifest["files"] == ["encoder.onnx", "decoder_step.onnx"]
    layer0 = ["layer0.h", "layer0.c"] if (decoder_cell or cell) is not GRUCell else ["layer0.h"]
    assert manifest["state"][: len(layer0)] == layer0 and manifest["state"][-1] == "feed"
    # greedy decoding driven from onnxruntime alone = the library's greedy decoding
    runtime = OnnxSeq2Seq(tmp_path / "onnx")
    g = torch.Generator().manual_seed(1)
    sources = [torch.randint(4, 30, (n,), generator=g).tolist() for n in (10, 1, 4, 7, 3)]
    src = torch.zeros(len(sources), 10, dtype=torch.long)
    for i, s in enumerate(sources):
        src[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in sources])
    assert runtime.greedy(sources, max_steps=12) == greedy(model.eval(), src, lengths, max_length=12)
    # an empty source: one unknown token, as the library's batches give it (Seq2SeqBatch.from_ids)
    empty = Seq2SeqBatch.from_ids([[], [7, 8]], [[], []], ["", ""])
    assert runtime.greedy([[], [7, 8]], max_steps=12) == greedy(model, empty.src, empty.src_lengths, max_length=12)
    with pytest.raises(ExportError, match="more than the exported max_length 10"):
        runtime.greedy([[5] * 11])


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


def test_tree_inputs_refuse_what_the_graph_cannot_compute():
    with pytest.raises(ExportError, match="tree 1 has height 2; .* up to height 1"):
        tree_inputs([[-1], [1, 3, 3, -1]], [[1], [1, 2, 3, -1]], max_depth=2)
    with pytest.raises(ExportError, match="tree 0 has a node with 3 children; the model's cell takes 2"):
        tree_inputs([[3, 3, 3, -1]], [[1, 2, 3, -1]], arity=2)


def test_tree_inputs_layout():
    inputs = tree_inputs([[2, 2, -1], [-1]], [[5, 6, -1], [7]])
    assert inputs["tokens"].tolist() == [5, 6, -1, 7]
    assert inputs["edge_parent"].tolist() == [2, 2] and inputs["edge_child"].tolist() == [0, 1]
    assert inputs["edge_slot"].tolist() == [0, 1] and inputs["height"].tolist() == [0, 0, 1, 0]
    assert inputs["roots"].tolist() == [2, 3]


@pytest.mark.parametrize("down", [NaryTreeLSTMCell(8, 5), ChildSumTreeLSTMCell(8, 5)], ids=["nary", "childsum"])
def test_bidirectional_tree_models_export_their_top_down_pass(tmp_path, down):
    torch.manual_seed(0)
    model = TreeClassifier(vocab_size=20, num_classes=3, cell=NaryTreeLSTMCell(6, 8), down_cell=down).eval()
    manifest = export_onnx(model, tmp_path / "onnx", max_depth=10)
    assert manifest["max_abs_diff"] <= 1e-4 and "depth" in manifest["inputs"]


def test_unsupported_models_say_why(tmp_path):
    model = TreeClassifier(vocab_size=10, num_classes=2, cell=NaryTreeLSTMCell(4, 4))
    with pytest.raises(ExportError, match="not Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "l")
    with pytest.raises(ExportError, match="export writes a folder"):
        export_onnx(model, tmp_path / "t.onnx")


def test_cli_exports_a_trained_bundle(tmp_path):
    from conftest import run_cli

    from nlp_lib.cli import compose, train

    data = tmp_path / "t.jsonl"
    data.write_text("\n".join(json.dumps({"text": t, "label": y}) for t, y in [("good", "p"), ("bad", "n")] * 20))
    run = tmp_path / "run"
    train(
        compose(
            "text_classifier",
            [
                f"data.train_path={data}",
                f"run_dir={run}",
                "data.vocab_size=30",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
            ],
        )
    )
    res = run_cli("export", f"bundle={run / 'bundle'}", "max_length=12")
    assert res.returncode == 0, res.stderr[-2000:]
    out = run / "bundle" / "onnx"
    assert (out / "model.onnx").is_file() and "max |difference|" in res.stdout
    assert json.loads((out / "onnx.json").read_text())["labels"] == ["n", "p"]
    bad = run_cli("export", f"bundle={run / 'bundle'}", "max_length=twelve")
    assert bad.returncode != 0 and "max_length must be a whole number" in bad.stderr
