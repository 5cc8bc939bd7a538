"""docs/recurrent_cells.md's worked example runs as written; masking equals one sequence alone; it trains."""

import torch
from conftest import exec_doc


def _doc_namespace() -> dict:
    return exec_doc("docs/recurrent_cells.md")


def test_worked_example_runs_and_masks_like_one_sequence_alone():
    ns = _doc_namespace()
    out, runner, x = ns["out"], ns["runner"], ns["x"]
    assert out.outputs.shape == (3, 5, 32) and out.last.shape == (3, 32)
    for b, n in enumerate([5, 2, 4]):
        alone = runner(x[b : b + 1, :n])
        torch.testing.assert_close(out.outputs[b, :n], alone.outputs[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(out.last[b], alone.last[0], atol=1e-6, rtol=0)
        assert out.outputs[b, n:].abs().max() == 0 if n < 5 else True


def test_worked_example_trains_in_a_sequence_classifier():
    ns = _doc_namespace()
    from nlp_lib.models import SequenceClassifier
    from nlp_lib.structure.sequence import SequenceBatch

    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 20, (int(n),), generator=g).tolist() for n in torch.randint(2, 12, (32,), generator=g)]
    labels = [int(s[0] < 10) for s in seqs]  # depends on the first token: needs memory over the sequence
    batch = SequenceBatch.from_lists(seqs, labels)
    torch.manual_seed(0)
    model = SequenceClassifier(
        vocab_size=20, num_classes=2, cell=ns["CoupledLSTMCell"], embedding_size=8, hidden_size=16
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    first = None
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(batch).logits, batch.labels)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_worked_example_serves_the_tagger_and_both_sides_of_seq2seq():
    ns = _doc_namespace()
    cell = ns["CoupledLSTMCell"]
    assert all(type(c) is cell for c in ns["tagger"].runner.cells)
    assert all(type(c) is cell for c in [*ns["translator"].encoder.cells, *ns["translator"].decoder_cells])
    assert len(ns["best"]) == 2 and all(len(h) == 1 for h in ns["best"])

    from nlp_lib.models import Seq2Seq
    from nlp_lib.models.decoding import greedy
    from nlp_lib.models.seq2seq import BOS, EOS

    torch.manual_seed(0)  # it learns: reversal of short sequences with the cell on both sides
    model = Seq2Seq(src_vocab_size=10, tgt_vocab_size=10, cell=cell, embedding_size=16, hidden_size=32, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(250):
        src = torch.randint(4, 10, (32, 4), generator=g)
        tgt_in = torch.cat([torch.full((32, 1), BOS), src.flip(1)], 1)
        tgt_out = torch.cat([src.flip(1), torch.full((32, 1), EOS)], 1)
        logits = model(src, torch.full((32,), 4), tgt_in).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    src = torch.randint(4, 10, (50, 4), generator=g)
    out = greedy(model.eval(), src, torch.full((50,), 4), max_length=8)
    assert sum(o == s.flip(0).tolist() for o, s in zip(out, src, strict=True)) >= 40  # 49 when written
