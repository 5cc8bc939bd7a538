"""nlp_lib.export.runtime: the tree graph's inputs from parent arrays; what OnnxSeq2Seq refuses to run."""

import json

import pytest

from nlp_lib.export import ExportError, OnnxSeq2Seq, tree_inputs


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
    assert inputs["depth"].tolist() == [1, 1, 0, 0] and inputs["roots"].tolist() == [2, 3]


def test_onnx_seq2seq_refuses_a_folder_that_is_not_an_exported_seq2seq(tmp_path):
    with pytest.raises(ExportError, match="onnx.json: cannot read it"):
        OnnxSeq2Seq(tmp_path)
    (tmp_path / "onnx.json").write_text(json.dumps({"kind": "tree_classifier"}))
    with pytest.raises(ExportError, match="not an exported seq2seq model .kind 'tree_classifier'"):
        OnnxSeq2Seq(tmp_path)
