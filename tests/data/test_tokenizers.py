"""The sentencepiece tokenizer: trained from memory, saved and loaded, with the seq2seq special ids (nlp_lib.data.tokenizers)."""

from nlp_lib.data.tokenizers import SentencePieceTokenizer
from nlp_lib.structure.seq2seq import BOS, EOS, PAD

GOOD = ["a truly great film", "wonderful acting and story", "I loved it", "great fun"]
BAD = ["a dull mess", "boring and far too long", "I hated it", "awful script"]


def test_sentencepiece_round_trip(tmp_path):
    tok = SentencePieceTokenizer.train(GOOD + BAD, vocab_size=60)
    ids = tok.encode("a great film")
    assert ids and all(0 < i < tok.vocab_size for i in ids)
    tok.save(tmp_path / "t.model")
    assert SentencePieceTokenizer.load(tmp_path / "t.model").encode("a great film") == ids


def test_sentencepiece_with_seq2seq_specials():
    texts = ["ein Hund läuft im Park", "zwei Hunde laufen", "ein Mann liest ein Buch"] * 20
    tok = SentencePieceTokenizer.train(texts, vocab_size=40, specials=True)
    assert tok.sp.bos_id() == BOS and tok.sp.eos_id() == EOS and tok.sp.pad_id() == PAD
    ids = tok.encode("ein Hund liest")
    assert min(ids) > EOS and tok.decode([*ids, EOS]) == "ein Hund liest"
