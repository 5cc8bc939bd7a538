"""Shared by the seq2seq model and decoding tests: a small double-precision model and padded sources."""

import torch

from nlp_lib.models import Seq2Seq
from nlp_lib.models.seq2seq import PAD


def small_seq2seq(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    args = dict(src_vocab_size=20, tgt_vocab_size=15, embedding_size=8, hidden_size=16, dropout=0.0)
    args.update(kw)
    return Seq2Seq(**args).double().eval()


def padded_sources(lengths, vocab=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    src = torch.randint(4, vocab, (len(lengths), max(lengths)), generator=g)
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    return src, lens
