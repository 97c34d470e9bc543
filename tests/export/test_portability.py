"""The custom-op check finds tensorflow_text ops and passes core-only graphs."""
import pytest
import tensorflow as tf

from ptft_keras.errors import CheckpointError
from ptft_keras.export.portability import custom_op_types, saved_model_op_types


def _save(tmp_path, fn):
    module = tf.Module()
    module.f = tf.function(fn, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path), signatures=module.f.get_concrete_function())
    return tmp_path


def test_core_ops_only(tmp_path):
    path = _save(tmp_path, lambda x: {"out": tf.strings.regex_replace(tf.strings.lower(x), "a", "b")})
    ops = saved_model_op_types(path)
    assert {"StringLower", "StaticRegexReplace"} <= ops
    assert custom_op_types(path) == set()


def test_tensorflow_text_op_is_found(tmp_path):
    text = pytest.importorskip("tensorflow_text")
    path = _save(tmp_path, lambda x: {"out": text.normalize_utf8(x, "NFD")})
    assert custom_op_types(path) == {"NormalizeUTF8"}


def test_missing_saved_model_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="saved_model.pb"):
        custom_op_types(tmp_path)
