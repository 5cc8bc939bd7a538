import re

import pytest

from nlp_lib.errors import TreeFormatError
from nlp_lib.structure.brackets import parse_ptb, parse_unlabelled, to_ptb


def test_parse_ptb_post_order_words_labels():
    t = parse_ptb("(3 (2 It) (4 (3 is) (4 good)))")
    assert t.parent == (4, 3, 3, 4, -1)
    assert t.words == ("It", "is", "good", "", "")
    assert t.labels == (2, 3, 4, 4, 3)
    assert t.leaf_words() == ["It", "is", "good"]
    assert to_ptb(t) == "(3 (2 It) (4 (3 is) (4 good)))"


def test_parse_ptb_word_with_space_and_unary():
    t = parse_ptb("(2 (2 8 1\\/2) (1 (1 x)))")
    assert t.leaf_words() == ["8 1\\/2", "x"]
    assert len(t) == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("(3 (2 It) (4 good)", "not closed"),
        ("(3 (2 It)))", "after the end"),
        (") (3 a)", "unbalanced ')'"),
        ("(3 ())", "empty node"),
        ("(x (2 It))", "not an integer"),
        ("(3 (2 It) (2 a)) extra", "after the end"),
        ("(3)", "neither a word nor children"),
        ("(3 word (2 a))", "cannot also have children"),
        ("", "empty tree"),
    ],
)
def test_parse_ptb_errors(text, message):
    with pytest.raises(TreeFormatError, match=re.escape(message)):
        parse_ptb(text)


def test_parse_ptb_non_numeric_labels():
    t = parse_ptb("(S (NP (DT the) (NN dog)) (VP (VBZ barks)))", numeric_labels=False)
    assert t.labels is None and t.leaf_words() == ["the", "dog", "barks"]


def test_parse_unlabelled_listops():
    t = parse_unlabelled("( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )")
    assert t.leaf_words() == ["[MAX", "2", "9", "[MIN", "4", "7", "]", "0", "]"]
    assert all(len(c) in (0, 2) for c in t.children())
    assert len(parse_unlabelled("7")) == 1


@pytest.mark.parametrize(
    "text, message", [("( a b", "not closed"), ("a b", "more than one tree"), ("( )", "empty group")]
)
def test_parse_unlabelled_errors(text, message):
    with pytest.raises(TreeFormatError, match=message):
        parse_unlabelled(text)
