"""nlp_lib.export.seq2seq: the encoder and step graphs give PyTorch's outputs; OnnxSeq2Seq decodes as greedy."""

import pytest

pytest.importorskip("onnxruntime", reason="the export extra is not installed")

import torch  # noqa: E402

from nlp_lib.cells import GRUCell, LayerNormLSTMCell, LSTMCell  # noqa: E402
from nlp_lib.export import ExportError, OnnxSeq2Seq, export_onnx  # noqa: E402
from nlp_lib.models import Seq2Seq  # noqa: E402
from nlp_lib.models.decoding import greedy  # noqa: E402
from nlp_lib.structure import Seq2SeqBatch  # noqa: E402


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
