"""Seq2Seq: attention, padding, decoding (batched beam search = one sentence at a time), options."""

import pytest
import torch

from nlp_lib.cells import GRUCell, LayerNormLSTMCell
from nlp_lib.models import Seq2Seq
from nlp_lib.models.decoding import beam_search, beam_search_one_by_one, greedy
from nlp_lib.models.seq2seq import BOS, EOS, PAD, Attention


def _model(**kw):
    torch.manual_seed(0)
    args = dict(src_vocab_size=20, tgt_vocab_size=15, embedding_size=8, hidden_size=16, dropout=0.0)
    args.update(kw)
    return Seq2Seq(**args).double().eval()


def _src(lengths, vocab=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=g)
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    return src, lens


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_batched_beam_search_equals_one_sentence_at_a_time(attention):
    model = _model(attention=attention)
    src, lens = _src([9, 3, 5, 1, 9, 7, 2, 4])
    kw = dict(beam_size=4, max_length=12, n_best=3, length_penalty=0.7)
    batched = beam_search(model, src, lens, **kw)
    alone = beam_search_one_by_one(model, src, lens, **kw)
    assert [[h.tokens for h in hs] for hs in batched] == [[h.tokens for h in hs] for hs in alone]
    for hs, gs in zip(batched, alone, strict=True):
        assert len(hs) == 3
        assert [h.score for h in hs] == sorted((h.score for h in hs), reverse=True)
        for h, g in zip(hs, gs, strict=True):
            assert h.score == pytest.approx(g.score, abs=1e-9)
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1) ** 0.7, abs=1e-9) or len(h.tokens) == 12


def test_beam_search_scores_are_the_model_log_probabilities():
    model = _model()
    src, lens = _src([6, 4])
    hyps = beam_search(model, src, lens, beam_size=3, max_length=10, n_best=2)
    for i, hs in enumerate(hyps):
        for h in hs:
            if len(h.tokens) >= 10:
                continue
            y = torch.tensor([h.tokens + [EOS]])
            tgt_in = torch.cat([torch.tensor([[BOS]]), y[:, :-1]], dim=1)
            logp = torch.log_softmax(model(src[i : i + 1, : lens[i]], lens[i : i + 1], tgt_in).logits, -1)
            assert float(logp.detach().gather(2, y.unsqueeze(-1)).sum()) == pytest.approx(h.log_prob, abs=1e-9)


def test_greedy_equals_beam_of_one():
    model = _model(attention="additive")
    src, lens = _src([5, 8, 2, 6])
    assert greedy(model, src, lens, max_length=12) == [
        h[0].tokens for h in beam_search(model, src, lens, beam_size=1, max_length=12)
    ]


def test_padding_does_not_change_a_sentence():
    model = _model()
    src, lens = _src([7, 3])
    tgt = torch.tensor([[BOS, 5, 6, 7], [BOS, 8, 9, 4]])
    both = model(src, lens, tgt)
    alone = model(src[1:2, :3], lens[1:2], tgt[1:2])
    assert torch.allclose(both.logits[1], alone.logits[0], atol=1e-10)
    assert torch.all(both.attention[1, :, 3:] == 0)  # no weight on padding


def test_other_cells_stacking_tied_embeddings_and_scheduled_sampling():
    model = Seq2Seq(
        src_vocab_size=12,
        tgt_vocab_size=12,
        cell=GRUCell,
        decoder_cell=LayerNormLSTMCell,
        embedding_size=16,
        hidden_size=16,
        num_layers=2,
        tie_embeddings=True,
        share_embeddings=True,
        teacher_forcing=0.5,
    )
    assert model.tgt_embedding is model.src_embedding and model.output is None
    src, lens = _src([4, 6], vocab=12)
    model.train()
    out = model(src, lens, torch.tensor([[BOS, 5, 6], [BOS, 7, PAD]]))
    out.logits.sum().backward()
    assert model.src_embedding.weight.grad is not None and len(model.decoder_cells) == 2


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="dot attention"):
        Attention("dot", 16, 8)
    with pytest.raises(ValueError, match="tie_embeddings"):
        Seq2Seq(src_vocab_size=5, tgt_vocab_size=5, embedding_size=8, hidden_size=16, tie_embeddings=True)
    with pytest.raises(ValueError, match="attention must be"):
        Seq2Seq(src_vocab_size=5, tgt_vocab_size=5, attention="luong")
    with pytest.raises(ValueError, match="n_best"):
        beam_search(_model(), *_src([3]), beam_size=2, n_best=3)


def test_a_small_model_learns_to_reverse():
    """Training works end to end: reversal of short sequences is learned to exact match."""
    torch.manual_seed(0)
    model = Seq2Seq(src_vocab_size=10, tgt_vocab_size=10, embedding_size=16, hidden_size=32, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        src = torch.randint(4, 10, (32, 4), generator=g)
        y = src.flip(1)
        tgt_in = torch.cat([torch.full((32, 1), BOS), y], 1)
        tgt_out = torch.cat([y, torch.full((32, 1), EOS)], 1)
        loss = torch.nn.functional.cross_entropy(
            model(src, torch.full((32,), 4), tgt_in).logits.flatten(0, 1), tgt_out.flatten()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src = torch.randint(4, 10, (50, 4), generator=g)
    out = greedy(model, src, torch.full((50,), 4), max_length=8)
    assert sum(o == s.flip(0).tolist() for o, s in zip(out, src, strict=True)) >= 45
