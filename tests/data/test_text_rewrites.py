"""Text normalisation modes: the same tf op result in eager code, tf.data and a tf.function."""
import pytest
import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.data.text_rewrites import MODES, check_mode, normalize_text

TEXTS = ["one<br />two", "a<br>b<BR/>c<br  / >d", "no breaks here", "", "é<br/>🙂"]


def test_html_breaks_become_spaces():
    out = [t.decode() for t in normalize_text(TEXTS, "html_breaks").numpy()]
    assert out == ["one two", "a b c d", "no breaks here", "", "é 🙂"]


@pytest.mark.parametrize("mode", [None, "none"])
def test_no_normalisation_is_the_identity(mode):
    assert [t.decode() for t in normalize_text(TEXTS, mode).numpy()] == TEXTS


def test_same_result_in_tf_data_and_tf_function():
    eager = normalize_text(TEXTS, "html_breaks").numpy().tolist()
    dataset = tf.data.Dataset.from_tensor_slices(TEXTS).map(lambda t: normalize_text(t, "html_breaks"))
    assert [t.numpy() for t in dataset] == eager
    graph = tf.function(lambda t: normalize_text(t, "html_breaks"))(tf.constant(TEXTS))
    assert graph.numpy().tolist() == eager


def test_unknown_mode_lists_the_modes():
    assert "html_breaks" in MODES and check_mode("none") is None
    with pytest.raises(ConfigError, match="html_breaks"):
        normalize_text(["x"], "html")
