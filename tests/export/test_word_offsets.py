"""Word offsets into the raw text agree with the pre-tokenizer's words."""
import tensorflow as tf

from ptft_keras.export.word_offsets import positions_in_rows, word_offsets

TEXTS = [
    "Héllo,  Wörld!", "", "   \t\n", "a\x00b c\u0301d 日本語 U.S.A. don't\tstop\n", "\x00\x00",
    "ＡＢＣ ﬁne e\u0301 İstanbul ß", "xxxxx🙂y ¿Qué? — «quoted» 3.14", "tab\there\u00a0nbsp\u2003em",
]


def test_each_word_is_a_pretokenizer_word(tokenizer):
    pretokenizer = tokenizer.pretokenizer
    starts, ends = word_offsets(pretokenizer, TEXTS)
    expected = pretokenizer(TEXTS).to_list()
    for text, s, e, words in zip(TEXTS, starts.to_list(), ends.to_list(), expected):
        pieces = [text[a:b] for a, b in zip(s, e)]
        assert len(pieces) == len(words), (text, pieces, words)
        assert all(a < b for a, b in zip(s, e)) and s == sorted(s)
        # Each span, normalised on its own, is exactly that word.
        assert [pretokenizer([p]).to_list()[0] for p in pieces] == [[w] for w in words], text


def test_a_special_token_in_the_text_is_one_word(tokenizer):
    text = "x[SEP]Zoë  [MASK]"
    starts, ends = word_offsets(tokenizer.pretokenizer, [text])
    assert [text[s:e] for s, e in zip(starts.to_list()[0], ends.to_list()[0])] == ["x", "[SEP]", "Zoë", "[MASK]"]


def test_offsets_are_code_points_and_max_chars_caps_the_text(tokenizer):
    starts, ends = word_offsets(tokenizer.pretokenizer, ["🙂 ab 🙂 cd"], max_chars=4)
    assert (starts.to_list(), ends.to_list()) == ([[0, 2]], [[1, 4]])


def test_positions_in_rows():
    ragged = tf.ragged.constant([[7, 8, 9], [], [1, 2]])
    assert positions_in_rows(ragged).numpy().tolist() == [0, 1, 2, 0, 1]
