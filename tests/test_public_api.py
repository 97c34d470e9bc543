import pytest

import ptft_keras


@pytest.mark.parametrize("name", sorted(ptft_keras._EXPORTS))
def test_every_public_name_resolves(name):
    assert getattr(ptft_keras, name) is not None


def test_unknown_name():
    with pytest.raises(AttributeError):
        ptft_keras.NoSuchThing  # noqa: B018
