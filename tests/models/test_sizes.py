"""Named sizes: layers and width from the table, heads = H/64, intermediate = 4H."""
import pytest

from ptft_keras.errors import ConfigError
from ptft_keras.models.sizes import NAMED_SIZES, size_config


@pytest.mark.parametrize(
    "size, layers, hidden",
    [("tiny", 2, 128), ("mini", 4, 256), ("small", 4, 512), ("medium", 8, 512), ("base", 12, 768), ("large", 24, 1024)],
)
def test_named_size(size, layers, hidden):
    assert size_config(size) == {
        "num_layers": layers, "hidden_dim": hidden, "num_heads": hidden // 64, "intermediate_dim": 4 * hidden,
    }


def test_unknown_size_names_the_choices():
    with pytest.raises(ConfigError, match="'huge'.*tiny"):
        size_config("huge")
    assert list(NAMED_SIZES) == ["tiny", "mini", "small", "medium", "base", "large"]
