"""Optional text normalisation, applied identically in training, evaluation and the exported graph.

A mode is a named list of regular-expression rewrites run with `tf.strings.regex_replace` (a core
TensorFlow op, so an exported SavedModel that normalises still needs no custom ops). The data pipeline
calls `normalize_text` on its text columns and `export_model(..., text_normalization=mode)` puts the
same call in front of the in-graph tokenizer, so a served model sees text exactly as it was trained.

Modes:
    ``None`` / ``"none"``  leave text as it is.
    ``"html_breaks"``      replace HTML line breaks (``<br>``, ``<br/>``, ``<br />``, any case) with a
                           space, e.g. for IMDB reviews.

Example:
    >>> from ptft_keras.data.text_rewrites import normalize_text
    >>> normalize_text(["Great film.<br /><br />Loved it"], "html_breaks").numpy().tolist()
    [b'Great film.  Loved it']
"""
from __future__ import annotations

from ptft_keras.errors import ConfigError

# mode -> ordered (RE2 pattern, replacement) rewrites
NORMALIZATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "html_breaks": ((r"(?i)<br\s*/?\s*>", " "),),
}
MODES = ("none", *NORMALIZATIONS)


def check_mode(mode: str | None) -> str | None:
    """Return the canonical mode name (None for no normalisation), or raise ConfigError listing the modes."""
    if mode is None or mode == "none":
        return None
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"text_normalization {mode!r} is not one of {', '.join(MODES)}")
    return mode


def normalize_text(texts, mode: str | None):
    """Apply normalisation `mode` to a string tensor (any shape); returns a `tf.string` tensor."""
    import tensorflow as tf  # here, so the mode names load without TensorFlow (`ptft --help`)

    mode = check_mode(mode)
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    for pattern, rewrite in NORMALIZATIONS.get(mode, ()):
        texts = tf.strings.regex_replace(texts, pattern, rewrite)
    return texts
