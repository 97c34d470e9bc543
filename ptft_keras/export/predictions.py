"""Turn a task model's logits into the named outputs a served model returns, per task.

* ``classification``: ``label`` string [B], ``label_id`` int32 [B], ``probabilities`` float32 [B, C]
  (softmax), ``logits`` [B, C].
* ``multilabel``: ``labels`` int32 multi-hot [B, C] (probability >= threshold), ``probabilities``
  [B, C] (sigmoid), ``logits``.
* ``regression``: ``score`` float32 [B] (or [B, K] for K targets).
* ``token-classification``: per token, ``tags`` string [B, L], ``tag_ids`` int32 [B, L], ``logits``
  [B, L, T].

(The text signature of a token classifier returns words, tags and entity spans instead: see
`ptft_keras.export.token_predictions`.)

Column ``c`` of a [B, C] output belongs to label ``c`` of ``assets/labels.txt``.

Example:
    >>> import tensorflow as tf
    >>> from ptft_keras.export.predictions import task_outputs
    >>> out = task_outputs("classification", tf.constant([[0.1, 2.0]]), label_names=["neg", "pos"])
    >>> out["label"].numpy().tolist(), out["label_id"].numpy().tolist()
    ([b'pos'], [1])
"""
from __future__ import annotations

import tensorflow as tf

from ptft_keras.errors import ConfigError
from ptft_keras.export.entities import tag_scheme

TOKEN_TASK = "token-classification"
TASKS = ("classification", "multilabel", "regression", TOKEN_TASK)
LABELLED_TASKS = ("classification", "multilabel", TOKEN_TASK)


def check_task(task: str, label_names, num_outputs: int) -> None:
    """Raise ConfigError unless `task` is known and `label_names` fits a model with `num_outputs` logits."""
    if task not in TASKS:
        raise ConfigError(f"task {task!r} cannot be exported; choose one of {', '.join(TASKS)}")
    if task not in LABELLED_TASKS:
        return
    if not label_names:
        raise ConfigError(f"task {task!r} needs label_names (one name per model output, in id order)")
    if len(label_names) != num_outputs:
        raise ConfigError(
            f"the model has {num_outputs} outputs but {len(label_names)} label names were given "
            f"({', '.join(map(str, label_names[:5]))}{', ...' if len(label_names) > 5 else ''}); "
            "pass one name per class, in id order"
        )
    if len(set(label_names)) != len(label_names) or any(not n or "\n" in n for n in label_names):
        raise ConfigError("label names must be unique, non-empty and contain no newline")
    if task == TOKEN_TASK:
        tag_scheme(label_names)


def task_outputs(task: str, logits, *, label_names=None, threshold: float = 0.5) -> dict:
    """The named serving outputs for `task` from `logits` [B, C] (see the module table)."""
    logits = tf.cast(logits, tf.float32)
    if task == "classification":
        label_id = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {
            "label": tf.gather(tf.constant(list(label_names), tf.string), label_id),
            "label_id": label_id,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "logits": logits,
        }
    if task == "multilabel":
        probabilities = tf.sigmoid(logits)
        return {
            "labels": tf.cast(probabilities >= threshold, tf.int32),
            "probabilities": probabilities,
            "logits": logits,
        }
    if task == "regression":
        return {"score": tf.squeeze(logits, axis=-1) if logits.shape[-1] == 1 else logits}
    if task == TOKEN_TASK:
        tag_ids = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"tags": tf.gather(tf.constant(list(label_names), tf.string), tag_ids), "tag_ids": tag_ids,
                "logits": logits}
    raise ConfigError(f"task {task!r} cannot be exported; choose one of {', '.join(TASKS)}")
