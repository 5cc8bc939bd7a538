import pytest

from nlp_lib.errors import TreeFormatError
from nlp_lib.structure.conllu import parse_conllu

SAMPLE = """# sent_id = 1
# text = The cat sat on the mat.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t_\t_
4\ton\ton\tADP\tIN\t_\t6\tcase\t_\t_
5\tthe\tthe\tDET\tDT\t_\t6\tdet\t_\t_
6\tmat\tmat\tNOUN\tNN\t_\t3\tobl\t_\t_
7\t.\t.\tPUNCT\t.\t_\t3\tpunct\t_\t_

# sent_id = 2
1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
1\tdo\tdo\tAUX\t_\t_\t3\taux\t_\t_
2\tn't\tnot\tPART\t_\t_\t3\tadvmod\t_\t_
3\tgo\tgo\tVERB\t_\t_\t0\troot\t_\t_
3.1\tgone\t_\t_\t_\t_\t_\t_\t_\t_
"""


def test_parses_sentences_in_post_order():
    first, second = list(parse_conllu(SAMPLE.splitlines()))
    assert first.sent_id == "1" and first.text == "The cat sat on the mat."
    assert first.sentence() == "The cat sat on the mat .".split()
    t = first.tree
    assert t.words[-1] == "sat" and first.deprel[-1] == "root"
    # every node after its dependents; dependents of a head in sentence order
    kids = t.children()
    assert [t.words[k] for k in kids[t.root]] == ["cat", "mat", "."]
    assert [t.words[k] for k in kids[t.words.index("mat")]] == ["on", "the"]
    assert second.sentence() == ["do", "n't", "go"]  # multiword token and empty node skipped
    assert second.upos == ("AUX", "PART", "VERB")


@pytest.mark.parametrize(
    "bad, match",
    [
        ("1\tA\t_\t_\t_\t_\t0\troot\t_", "10 tab-separated"),
        ("1\tA\t_\t_\t_\t_\t0\troot\t_\t_\n2\tB\t_\t_\t_\t_\t0\troot\t_\t_", "2 roots"),
        ("1\tA\t_\t_\t_\t_\t5\tx\t_\t_\n2\tB\t_\t_\t_\t_\t0\troot\t_\t_", "outside the sentence"),
        ("1\tA\t_\t_\t_\t_\tx\tx\t_\t_", "must be integers"),
        ("1\tA\t_\t_\t_\t_\t2\tx\t_\t_\n2\tB\t_\t_\t_\t_\t1\tx\t_\t_\n3\tC\t_\t_\t_\t_\t0\troot\t_\t_", "cycle"),
    ],
)
def test_bad_input_names_source_and_line(bad, match):
    with pytest.raises(TreeFormatError, match=match) as info:
        list(parse_conllu(("# c\n" + bad).splitlines(), source="x.conllu"))
    assert str(info.value).startswith("x.conllu:")


def test_dependency_trees_run_batched_as_one_at_a_time():
    from nlp_lib.cells import ChildSumTreeGRUCell, ChildSumTreeLSTMCell, NaryTreeLSTMCell
    from nlp_lib.modules import check_cell

    trees = [d.tree for d in parse_conllu(SAMPLE.splitlines())]
    for cell in (ChildSumTreeLSTMCell(5, 4), ChildSumTreeGRUCell(5, 4), NaryTreeLSTMCell(5, 4, arity=3)):
        check_cell(cell, graphs=trees)
        check_cell(cell, graphs=trees, direction="down")
