"""The model card: JSON for programs, Markdown for people, both carrying training config and metrics."""
import json

import tensorflow as tf

from ptft_keras.export.model_card import describe_signature, write_model_card


def test_card_json_and_readme(tmp_path):
    card = write_model_card(
        tmp_path, model_name="reviews", task="classification", label_names=["neg", "pos"], sequence_length=64,
        text_normalization="html_breaks", example={"text": ["great", "awful"]},
        metadata={"training_config": {"learning_rate": 3e-5, "epochs": 2}, "metrics": {"accuracy": 0.875}},
    )
    saved = json.loads((tmp_path / "model_card.json").read_text(encoding="utf-8"))
    assert saved == card
    assert saved["label_names"] == ["neg", "pos"] and saved["metrics"] == {"accuracy": 0.875}
    assert saved["tensorflow_version"] == tf.__version__
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    for expected in ("# reviews", "- 1: `pos`", "`html_breaks`", "64 tokens", '"learning_rate": 3e-05',
                     '"accuracy": 0.875', '{"instances": ["great", "awful"]}', "/v1/models/reviews:predict"):
        assert expected in readme, expected


def test_pair_example_is_written_as_rows(tmp_path):
    write_model_card(tmp_path, model_name="nli", task="classification", label_names=["no", "yes"],
                     sequence_length=32, example={"text": ["a", "b"], "text_pair": ["c", "d"]})
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert '{"instances": [{"text": "a", "text_pair": "c"}, {"text": "b", "text_pair": "d"}]}' in readme


def test_describe_signature_lists_inputs_and_outputs():
    fn = tf.function(lambda text: {"n": tf.strings.length(text)},
                     input_signature=[tf.TensorSpec([None], tf.string, name="text")]).get_concrete_function()
    assert describe_signature(fn) == {"inputs": {"text": {"dtype": "string", "shape": [None]}},
                                      "outputs": {"n": {"dtype": "int32", "shape": [None]}}}
