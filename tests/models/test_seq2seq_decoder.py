"""The teacher-forced decoder (recurrence per step, output layer once over every position) computes
what the step-by-step decoder computes: logits, attention and gradients, dropout masks included."""

import pytest
import torch

from nlp_lib.cells import GRUCell, LSTMCell
from nlp_lib.models import Seq2Seq
from nlp_lib.models.seq2seq import Seq2SeqOutput


def _step_by_step(model, src, src_lengths, tgt_in):
    """The reference: Seq2Seq.step (embedding, recurrence and output layer) at every position."""
    enc, state = model.encode(src, src_lengths)
    logits, attn = [], []
    for t in range(tgt_in.shape[1]):
        out, state, w = model.step(tgt_in[:, t], state, enc)
        logits.append(out)
        attn.append(w)
    return Seq2SeqOutput(torch.stack(logits, 1), torch.stack(attn, 1))


@pytest.mark.parametrize(
    "options",
    [
        {"cell": LSTMCell},
        {"cell": GRUCell, "attention": "additive", "input_feeding": False},
        {"cell": LSTMCell, "tie_embeddings": True, "num_layers": 2, "dropout": 0.3},
    ],
    ids=["lstm", "gru-additive-no-feeding", "tied-2-layers-dropout"],
)
def test_teacher_forced_decoder_equals_the_step_by_step_one(options):
    torch.manual_seed(0)
    kwargs = {"src_vocab_size": 13, "tgt_vocab_size": 17, "embedding_size": 8, "hidden_size": 6, **options}
    if kwargs.get("tie_embeddings"):
        kwargs["embedding_size"] = kwargs["hidden_size"]
    model = Seq2Seq(**kwargs).double().train()
    src = torch.randint(4, 13, (3, 5))
    src_lengths = torch.tensor([5, 3, 1])
    tgt_in = torch.randint(4, 17, (3, 7))
    tgt_in[:, 0] = 2
    tgt_in[2, 4:] = 0  # padding
    runs = []
    for fn in (lambda: model(src, src_lengths, tgt_in), lambda: _step_by_step(model, src, src_lengths, tgt_in)):
        torch.manual_seed(1)  # the same dropout masks, drawn in the same order
        model.zero_grad()
        out = fn()
        (out.logits.square().mean() + out.attention.sum()).backward()
        runs.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (new, new_grads), (ref, ref_grads) = runs
    torch.testing.assert_close(new.logits, ref.logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(new.attention, ref.attention, rtol=0, atol=1e-6)
    assert new_grads.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(new_grads[name], ref_grads[name], rtol=0, atol=1e-6, msg=name)
