"""SequenceClassifier and SequenceTagger: pooling over real tokens only, padding that changes nothing, a label per token.

(The sequence runner's parity with nn.LSTM / nn.GRU: tests/modules/test_seq_runner.py.)
"""

import pytest
import torch

from nlp_lib.cells import GRUCell, LSTMCell
from nlp_lib.models import SequenceClassifier, SequenceTagger
from nlp_lib.structure.sequence import SequenceBatch

SEQS = [[1, 2, 3, 4, 5], [6, 7], [8], [9, 3, 2]]


def _classifier(pooling, **kw):
    torch.manual_seed(0)
    args = dict(vocab_size=10, num_classes=3, cell=LSTMCell, embedding_size=4, hidden_size=6, pooling=pooling)
    args.update(kw)
    return SequenceClassifier(**args).double().eval()


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
def test_a_padded_sequence_is_classified_as_it_is_alone(pooling, bidirectional):
    model = _classifier(pooling, bidirectional=bidirectional, num_layers=2)
    out = model(SequenceBatch.from_lists(SEQS))
    assert out.logits.shape == (len(SEQS), 3) and out.pooled.shape == (len(SEQS), model.runner.output_size)
    for i, seq in enumerate(SEQS):
        alone = model(SequenceBatch.from_lists([seq]))
        torch.testing.assert_close(out.logits[i], alone.logits[0], atol=1e-12, rtol=0)
        torch.testing.assert_close(out.pooled[i], alone.pooled[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_mean_and_max_pool_the_real_tokens_outputs(pooling):
    model = _classifier(pooling)
    batch = SequenceBatch.from_lists(SEQS)
    outputs = model.runner(model.embedding(batch.tokens), batch.lengths).outputs  # [B, T, H]
    pooled = model(batch).pooled
    for i, n in enumerate(batch.lengths.tolist()):
        real = outputs[i, :n]
        expected = real.mean(0) if pooling == "mean" else real.amax(0)
        torch.testing.assert_close(pooled[i], expected, atol=1e-12, rtol=0)


def test_an_unknown_pooling_is_named():
    with pytest.raises(ValueError, match="pooling must be 'last', 'mean' or 'max', got 'sum'"):
        _classifier("sum")


def test_tagger_gives_a_label_per_token_and_ignores_padding():
    batch = SequenceBatch.from_lists([[1, 2, 3], [4]], [[0, 1, 2], [1]])
    assert batch.labels.tolist() == [[0, 1, 2], [1, -1, -1]]
    torch.manual_seed(0)
    tagger = SequenceTagger(vocab_size=5, num_classes=3, cell=GRUCell, embedding_size=4, hidden_size=6)
    logits = tagger(batch).logits
    assert logits.shape == (2, 3, 3)
    alone = tagger(SequenceBatch.from_lists([[4]])).logits
    torch.testing.assert_close(logits[1, :1], alone[0])
