"""Seq2Seq: attention, padding, cells and options, training (decoding: tests/models/test_decoding.py)."""

import pytest
import torch
from seq2seq_helpers import padded_sources, small_seq2seq

from nlp_lib.cells import GRUCell, LayerNormLSTMCell
from nlp_lib.models import Seq2Seq
from nlp_lib.models.decoding import greedy
from nlp_lib.models.seq2seq import BOS, EOS, PAD, Attention


def test_padding_does_not_change_a_sentence():
    model = small_seq2seq()
    src, lens = padded_sources([7, 3])
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
    src, lens = padded_sources([4, 6], vocab=12)
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
