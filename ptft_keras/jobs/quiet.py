"""A quiet console for the jobs: TensorFlow's start-up chatter kept off the terminal unless asked for.

TensorFlow prints its C++ start-up lines (the absl banner, oneDNN and CUDA notices, a ``cuInit``
error on machines without a GPU) straight to file descriptor 2, before any environment setting can
reach them. `quiet_tensorflow` imports TensorFlow and initialises its devices with descriptor 2
pointed at a temporary file, then writes back only the lines that are not such chatter. Later C++
logging obeys ``TF_CPP_MIN_LOG_LEVEL``, which it sets to 3 (Python exceptions still carry every error).

`--log-level` (``ptft --log-level info COMMAND``) or the user's own ``TF_CPP_MIN_LOG_LEVEL`` wins:
then nothing is filtered.

Example:
    >>> is_chatter("I0000 00:00:1796574080.884860   12508 port.cc:153] oneDNN custom operations are on.")
    True
    >>> is_chatter("error: train.tsv, line 3: no such column")
    False
"""
from __future__ import annotations

import os
import re
import sys
import tempfile

LOG_LEVELS = {"debug": "0", "info": "0", "warning": "1", "error": "2", "quiet": "3"}
_CHATTER = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"),
    re.compile(r"^[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "),
    re.compile(r"^E\d{4} [\d:.]+\s+\d+ \S+:\d+\] .*(cuInit|CUDA|cuda|GPU|oneDNN)"),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.$"),
)


def is_chatter(line: str) -> bool:
    """Whether a stderr line is TensorFlow start-up chatter (never one of ours or a real error)."""
    return any(pattern.search(line) for pattern in _CHATTER)


def quiet_tensorflow(log_level: str | None = None) -> None:
    """Import TensorFlow with its start-up chatter filtered out of stderr (see the module docstring).

    `log_level` (one of `LOG_LEVELS`) shows TensorFlow's own logging at that level, unfiltered; so does a
    ``TF_CPP_MIN_LOG_LEVEL`` the user set before ptft_keras was imported.
    """
    if log_level is not None:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = LOG_LEVELS[log_level]
        import tensorflow  # noqa: F401
        return
    if os.environ.get("PTFT_USER_TF_LOG_LEVEL") or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # later C++ lines (oneDNN fallbacks, ...): only fatal ones
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import absl.logging
            import tensorflow as tf

            absl.logging.set_verbosity(absl.logging.ERROR)
            tf.config.list_physical_devices()  # the device probe (and its cuInit line) happens now
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode("utf-8", "replace").splitlines() if not is_chatter(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
