"""Token classification export: words with offsets, one tag per word from its first piece, entity spans."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.export.serving import export_model
from ptft_keras.training.metrics import entity_spans

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
LENGTH = 16
TEXTS = [
    "Ada Lovelace was born in London, England.",
    "",
    "Ünïcödé text: Zoë visited Škoda in Plzeň, 日本.",
    "a very long sentence that certainly does not fit into sixteen word pieces at all, no way",
    "Łódź [SEP] e\u0301le\u0300ve ﬁne 한국",  # a special token, decomposed accents, expanding characters
]


@pytest.fixture(scope="module")
def ner(tokenizer, tmp_path_factory):
    import keras_hub

    from ptft_keras.tasks.token_classifier import TokenClassifier

    keras.utils.set_random_seed(3)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocab_size, num_layers=2, num_heads=2,
                                             hidden_dim=32, intermediate_dim=64, max_sequence_length=64)
    model = TokenClassifier(backbone, label_names=TAGS)
    version = export_model(model, tokenizer, tmp_path_factory.mktemp("ner") / "ner", sequence_length=LENGTH)
    return model, tf.saved_model.load(str(version))


def _expected_tags(model, tokenizer, texts):
    """Per text: the tag id of each word whose first piece fits, from the in-memory model."""
    logits = keras.ops.convert_to_numpy(model(tokenizer(texts, sequence_length=LENGTH), training=False))
    expected = []
    for row, words in zip(logits, tokenizer.tokenize(texts, return_words=True).to_list()):
        position, tags = 1, []
        for pieces in words:
            if position > LENGTH - 2:
                break
            tags.append(int(row[position].argmax()))
            position += len(pieces)
        expected.append(tags)
    return expected


def test_words_tags_and_entities(ner, tokenizer):
    model, loaded = ner
    out = {k: v.numpy().tolist() for k, v in loaded.signatures["serving_default"](text=tf.constant(TEXTS)).items()}
    expected = _expected_tags(model, tokenizer, TEXTS)
    assert any(t != 0 for tags in expected for t in tags)  # the random model does predict entities
    for b, text in enumerate(TEXTS):
        n = len(expected[b])
        assert out["tag_ids"][b][:n] == expected[b] and set(out["tag_ids"][b][n:]) <= {-1}
        assert [t.decode() for t in out["tags"][b][:n]] == [TAGS[i] for i in expected[b]]
        starts, ends = out["word_starts"][b][:n], out["word_ends"][b][:n]
        assert [w.decode() for w in out["words"][b][:n]] == [text[s:e] for s, e in zip(starts, ends)]
        spans = entity_spans([TAGS[i] for i in expected[b]])
        m = len(spans)
        assert [k.decode() for k in out["entity_types"][b][:m]] == [kind for kind, _, _ in spans]
        assert out["entity_starts"][b][:m] == [starts[f] for _, f, _ in spans]
        assert out["entity_ends"][b][:m] == [ends[l] for _, _, l in spans]
        assert [t.decode() for t in out["entity_texts"][b][:m]] == [text[starts[f]:ends[l]] for _, f, l in spans]
        assert set(out["entity_starts"][b][m:]) <= {-1}
    assert len(expected[3]) < len(TEXTS[3].split())  # the long text was truncated, not rejected


def test_a_text_alone_is_tagged_as_in_a_batch_of_longer_texts(ner, tokenizer):
    """The batch holds a long text, so it is padded to all 16 columns; a short text alone reads 8 of them:
    the same tags, probabilities and entities."""
    model, loaded = ner
    serve = loaded.signatures["serving_default"]
    batch = serve(text=tf.constant(TEXTS))
    for b, text in enumerate(TEXTS):
        alone = serve(text=tf.constant([text]))
        n = len(_expected_tags(model, tokenizer, [text])[0])
        assert alone["tag_ids"].numpy()[0].tolist() == batch["tag_ids"].numpy()[b][:alone["tag_ids"].shape[1]].tolist()
        assert set(batch["tag_ids"].numpy()[b][alone["tag_ids"].shape[1]:].tolist()) <= {-1}
        np.testing.assert_allclose(alone["tag_probabilities"].numpy()[0][:n], batch["tag_probabilities"].numpy()[b][:n],
                                   atol=1e-5, rtol=0)
        assert [t for t in alone["entity_texts"].numpy()[0] if t] == [t for t in batch["entity_texts"].numpy()[b] if t]


def test_word_spans_are_transformers_word_spans(ner, minilm_path):
    transformers = pytest.importorskip("transformers")
    _, loaded = ner
    out = loaded.signatures["serving_default"](text=tf.constant(TEXTS))
    encoding = transformers.BertTokenizerFast.from_pretrained(minilm_path)(
        TEXTS, add_special_tokens=False, return_offsets_mapping=True)
    for b in range(len(TEXTS)):
        spans = {}
        for word, (start, end) in zip(encoding.word_ids(b), encoding["offset_mapping"][b]):
            first, last = spans.get(word, (start, end))
            spans[word] = (min(first, start), max(last, end))
        starts, ends = out["word_starts"][b].numpy().tolist(), out["word_ends"][b].numpy().tolist()
        ours = [(s, e) for s, e in zip(starts, ends) if s >= 0]
        assert ours == [spans[w] for w in sorted(spans)][:len(ours)], TEXTS[b]
        assert len(ours) >= min(len(spans), 5), TEXTS[b]  # all words, or those that fit


def test_ids_signature_gives_per_token_tags(ner, tokenizer):
    _, loaded = ner
    features = tokenizer(TEXTS, sequence_length=LENGTH)
    out = loaded.signatures["serving_ids"](**{k: tf.cast(v, tf.int32) for k, v in features.items()})
    assert out["tags"].shape == (len(TEXTS), LENGTH) and out["logits"].shape == (len(TEXTS), LENGTH, len(TAGS))


def test_token_export_refuses_pairs_and_non_bio_tags(ner, tokenizer, tmp_path):
    model, _ = ner
    with pytest.raises(ConfigError, match="single texts"):
        export_model(model, tokenizer, tmp_path / "a", sequence_length=LENGTH, pair=True)
    with pytest.raises(ConfigError, match="B-/I-/E-/S-"):
        export_model(model, tokenizer, tmp_path / "b", sequence_length=LENGTH, label_names=["O", "PER", "LOC", "X", "Y"])
