"""PTB-style trees: the SST-2 label mapping (nlp_lib.data.ptb; the reader's bad input: test_bad_input.py)."""

from nlp_lib.data.ptb import sst_binary
from nlp_lib.structure import parse_ptb


def test_binary_maps_labels_and_drops_neutral_roots():
    t = sst_binary(parse_ptb("(4 (2 A) (3 (1 b) (0 c)))"))
    assert list(t.labels) == [-1, 0, 0, 1, 1]
    assert sst_binary(parse_ptb("(2 (3 A) (2 b))")) is None


def test_binary_with_neutral_phrases_keeps_them_as_a_third_class():
    # Tai et al. (2015)'s SST-2 training: phrases negative / positive / neutral, roots never neutral
    t = sst_binary(parse_ptb("(4 (2 A) (3 (1 b) (0 c)))"), neutral=True)
    assert list(t.labels) == [2, 0, 0, 1, 1]
    assert sst_binary(parse_ptb("(2 (3 A) (2 b))"), neutral=True) is None
