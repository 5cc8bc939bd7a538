"""Decoding a Seq2Seq model: batched beam search = one sentence at a time, scores, greedy = a beam of one."""

import pytest
import torch
from seq2seq_helpers import padded_sources, small_seq2seq

from nlp_lib.models import decoding
from nlp_lib.models.decoding import beam_search, beam_search_one_by_one, greedy
from nlp_lib.models.seq2seq import BOS, EOS


@pytest.mark.parametrize("attention", ["dot", "general", "additive"])
def test_batched_beam_search_equals_one_sentence_at_a_time(attention):
    model = small_seq2seq(attention=attention)
    src, lens = padded_sources([9, 3, 5, 1, 9, 7, 2, 4])
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
    model = small_seq2seq()
    src, lens = padded_sources([6, 4])
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
    model = small_seq2seq(attention="additive")
    src, lens = padded_sources([5, 8, 2, 6])
    assert greedy(model, src, lens, max_length=12) == [
        h[0].tokens for h in beam_search(model, src, lens, beam_size=1, max_length=12)
    ]


def test_outputs_hold_no_end_token_and_respect_max_length():
    model = small_seq2seq()
    src, lens = padded_sources([5, 8, 2, 6])
    for out in greedy(model, src, lens, max_length=7):
        assert len(out) <= 7 and EOS not in out
    for hyps in beam_search(model, src, lens, beam_size=3, max_length=7, n_best=2):
        assert all(len(h.tokens) <= 7 and EOS not in h.tokens for h in hyps)


def test_more_best_hypotheses_than_beams_is_refused():
    with pytest.raises(ValueError, match="n_best"):
        beam_search(small_seq2seq(), *padded_sources([3]), beam_size=2, n_best=3)


def test_min_length_holds_the_end_token_back():
    model = small_seq2seq()
    src, lens = padded_sources([5, 8, 2, 6])
    free = [len(h[0].tokens) for h in beam_search(model, src, lens, beam_size=3, max_length=12)]
    assert min(free) < 6  # without min_length some outputs are shorter: the test can tell
    for hyps in beam_search(model, src, lens, beam_size=3, max_length=12, min_length=6, n_best=2):
        assert all(6 <= len(h.tokens) <= 12 and EOS not in h.tokens for h in hyps)
    forced = beam_search(model, src, lens, beam_size=3, max_length=9, min_length=9)
    assert [len(h[0].tokens) for h in forced] == [9] * 4  # min = max: every output that long
    assert all(len(out) == 9 for out in greedy(model, src, lens, max_length=9, min_length=9))
    batched = beam_search(model, src, lens, beam_size=3, max_length=10, min_length=4, n_best=2)
    alone = beam_search_one_by_one(model, src, lens, beam_size=3, max_length=10, min_length=4, n_best=2)
    assert [[h.tokens for h in hs] for hs in batched] == [[h.tokens for h in hs] for hs in alone]


@pytest.mark.parametrize("lengths", [(-1, 5), (6, 5), (0, 0)])
def test_bad_min_and_max_lengths_are_refused(lengths):
    lo, hi = lengths
    for decode in (greedy, lambda *a, **kw: beam_search(*a, beam_size=2, **kw)):
        with pytest.raises(ValueError, match="min_length|max_length"):
            decode(small_seq2seq(), *padded_sources([3]), max_length=hi, min_length=lo)


def test_the_sliced_output_layer_finds_what_log_softmax_over_the_vocabulary_finds(monkeypatch):
    """beam_search keeps each row's 2k best tokens by vocabulary slices; a model with its own ``step``
    goes through step + log_softmax over every token: the same hypotheses and scores."""
    model = small_seq2seq()
    sliced = []  # the sliced path's calls, with slices of 3 tokens (a small vocabulary is one slice)
    monkeypatch.setattr(decoding, "slice_width", lambda rows, vocab, device: 3)
    top = decoding.linear_top_log_probs
    monkeypatch.setattr(decoding, "linear_top_log_probs", lambda *a, **kw: sliced.append(kw) or top(*a, **kw))

    class OwnStep(type(model)):
        def step(self, y_prev, state, enc):
            return super().step(y_prev, state, enc)

    other = OwnStep.__new__(OwnStep)
    other.__dict__ = model.__dict__  # the same module, weights and all, with its own step
    src, lens = padded_sources([5, 8, 2, 6, 9])
    for kw in (dict(beam_size=4, n_best=3), dict(beam_size=3, min_length=5), dict(beam_size=1)):
        fast = beam_search(model, src, lens, max_length=11, **kw)
        slow = beam_search(other, src, lens, max_length=11, **kw)
        assert [[h.tokens for h in hs] for hs in fast] == [[h.tokens for h in hs] for hs in slow]
        for hs, gs in zip(fast, slow, strict=True):
            assert [h.score for h in hs] == pytest.approx([g.score for g in gs], abs=1e-9)
    assert sliced and all(kw["slice_width"] == 3 for kw in sliced)


def test_a_vocabulary_of_one_slice_takes_log_softmax(monkeypatch):
    model = small_seq2seq()
    monkeypatch.setattr(decoding, "linear_top_log_probs", lambda *a, **kw: pytest.fail("sliced a one-slice vocabulary"))
    src, lens = padded_sources([5, 8])
    assert len(beam_search(model, src, lens, beam_size=3, max_length=6)) == 2


def _bf16_log_softmax(model, src, lens, tokens):
    """Teacher-forced log-probabilities after ``BOS + tokens`` ``[T + 1, V]``, the output product in bfloat16."""
    tgt_in = torch.tensor([[BOS, *tokens]])
    with torch.no_grad():
        hidden, _ = model.decode_hidden(src, lens, tgt_in)
    weight, bias = model.output_layer()
    logits = (hidden[0].bfloat16() @ weight.detach().bfloat16().T).to(hidden.dtype) + bias.detach()
    return torch.log_softmax(logits, -1)


def _bf16_log_probs(model, src, lens, tokens):
    """Teacher-forced log p(tokens + EOS) with the output layer's product in bfloat16 (the reference)."""
    logp = _bf16_log_softmax(model, src, lens, tokens)
    return float(logp.gather(1, torch.tensor([*tokens, EOS]).unsqueeze(1)).sum())


@pytest.mark.parametrize("width", [3, None])  # vocabulary slices of 3 tokens, or one slice
def test_bfloat16_output_layer_scores_what_a_bfloat16_product_gives(monkeypatch, width):
    model = small_seq2seq()
    if width:
        monkeypatch.setattr(decoding, "slice_width", lambda rows, vocab, device: width)
    src, lens = padded_sources([5, 8, 2, 6, 9])
    kw = dict(beam_size=4, max_length=10, n_best=3)
    low = beam_search(model, src, lens, output_precision="bfloat16", **kw)
    full = beam_search(model, src, lens, **kw)
    alone = beam_search_one_by_one(model, src, lens, output_precision="bfloat16", **kw)
    assert [[h.tokens for h in hs] for hs in low] == [[h.tokens for h in hs] for hs in alone]
    moved = 0.0
    for i, hs in enumerate(low):
        for h in hs:
            if len(h.tokens) < 10:  # a finished hypothesis: its score is the bf16 model's log-probability
                ref = _bf16_log_probs(model, src[i : i + 1, : lens[i]], lens[i : i + 1], h.tokens)
                assert h.log_prob == pytest.approx(ref, abs=1e-4)
        for h, g in zip(hs, full[i], strict=True):
            if h.tokens == g.tokens:
                assert h.log_prob == pytest.approx(g.log_prob, abs=0.05)  # close to the exact search ...
                moved = max(moved, abs(h.log_prob - g.log_prob))
    assert moved > 1e-6  # ... and not the exact search itself


def test_bfloat16_greedy_equals_a_bfloat16_beam_of_one():
    model = small_seq2seq(attention="additive")
    src, lens = padded_sources([5, 8, 2, 6])
    low = greedy(model, src, lens, max_length=12, output_precision="bfloat16")
    assert low == [
        h[0].tokens for h in beam_search(model, src, lens, beam_size=1, max_length=12, output_precision="bfloat16")
    ]
    for i, out in enumerate(low):  # each step's choice is the argmax of the bfloat16 product's logits
        chosen = _bf16_log_softmax(model, src[i : i + 1, : lens[i]], lens[i : i + 1], out).argmax(-1).tolist()
        assert chosen[: len(out)] == out and (len(out) == 12 or chosen[len(out)] == EOS)


def test_output_precision_is_checked():
    model = small_seq2seq()
    src, lens = padded_sources([3, 4])
    for decode in (greedy, beam_search):
        with pytest.raises(ValueError, match="output_precision must be 'full' or 'bfloat16', got 'float16'"):
            decode(model, src, lens, output_precision="float16")

    class OwnStep(type(model)):
        def step(self, y_prev, state, enc):
            return super().step(y_prev, state, enc)

    other = OwnStep.__new__(OwnStep)
    other.__dict__ = model.__dict__
    with pytest.raises(ValueError, match="OwnStep overrides one"):
        beam_search(other, src, lens, output_precision="bfloat16")
    assert len(beam_search(other, src, lens, output_precision="full")) == 2


def test_bfloat16_on_a_cpu_without_bf16_instructions_warns(monkeypatch):
    model = small_seq2seq()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not decoding.bf16_is_native(torch.device("cpu"))
    with pytest.warns(UserWarning, match="without AVX512-BF16 or AMX"):
        beam_search(model, *padded_sources([3]), beam_size=2, max_length=4, output_precision="bfloat16")


@pytest.mark.parametrize("beam_size", [3, 7])  # 2k below and above the 15-word target vocabulary
def test_the_first_step_runs_one_row_per_sentence(monkeypatch, beam_size):
    """Every beam of a sentence starts from the same state, so the first step runs one row per
    sentence (when that row's 2k best tokens are enough candidates) and the search is unchanged."""
    model = small_seq2seq()
    rows = []
    step = decoding._best_continuations
    monkeypatch.setattr(decoding, "_best_continuations", lambda m, y, *a: rows.append(len(y)) or step(m, y, *a))
    src, lens = padded_sources([5, 8, 2, 6, 9])
    kw = dict(beam_size=beam_size, max_length=8, n_best=2)
    hyps = beam_search(model, src, lens, **kw)
    assert rows[0] == (5 if 2 * beam_size < 15 else 5 * beam_size) and rows[1] == 5 * beam_size
    assert [[h.tokens for h in hs] for hs in hyps] == [
        [h.tokens for h in hs] for hs in beam_search_one_by_one(model, src, lens, **kw)
    ]


def test_a_model_with_its_own_project_vocab_decodes_through_it():
    """A subclass that changes the logits (here: only ids below 6 allowed) is decoded through its own
    project_vocab, greedy and beam search alike, and refuses the bfloat16 output layer."""
    model = small_seq2seq()

    class Masked(type(model)):
        def project_vocab(self, h):
            z = super().project_vocab(h)
            z[..., 6:] = float("-inf")
            return z

    masked = Masked.__new__(Masked)
    masked.__dict__ = model.__dict__
    src, lens = padded_sources([5, 8, 2, 6])
    assert all(t < 6 for out in greedy(masked, src, lens, max_length=8) for t in out)
    assert all(t < 6 for hs in beam_search(masked, src, lens, beam_size=3, max_length=8) for t in hs[0].tokens)
    assert any(t >= 6 for out in greedy(model, src, lens, max_length=8) for t in out)  # the mask matters
    with pytest.raises(ValueError, match="Masked overrides one"):
        greedy(masked, src, lens, output_precision="bfloat16")


@pytest.mark.parametrize("precision", ["full", "bfloat16"])
def test_decoding_under_bf16_autocast(precision):
    """Lightning's bf16-mixed validation decodes inside autocast: the bias (float32) meets a bfloat16
    hidden state there; greedy and beam search still run and agree."""
    model = small_seq2seq().float()
    src, lens = padded_sources([5, 8, 2, 6])
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        out = greedy(model, src, lens, max_length=8, output_precision=precision)
        hyps = beam_search(model, src, lens, beam_size=1, max_length=8, length_penalty=0.0, output_precision=precision)
    assert out == [h[0].tokens for h in hyps] and all(len(o) <= 8 for o in out)
