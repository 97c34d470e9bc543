"""Export a fine-tuned task model as a TF Serving SavedModel: raw strings in, named predictions out.

The exported graph holds the whole pipeline: optional text normalisation, the core-ops tokenizer (no
tensorflow_text ops, so any TensorFlow runtime can serve it), the model, and the task's
post-processing. Two signatures:

* ``serving_default``: ``text`` (tf.string [batch]) and, for pair tasks, ``text_pair``
  -> the task outputs of `ptft_keras.export.predictions` (``label``, ``label_id``, ``probabilities``, ...).
* ``serving_ids``: ``token_ids``, ``padding_mask`` (and ``segment_ids`` for BERT), int32 [batch, length],
  for clients that tokenize themselves -> the same outputs.

A request costs what its longest text costs: texts are truncated to ``sequence_length`` tokens as in
training, then the model reads only as many columns as the request's longest text needs, rounded up
to a multiple of 8 (`padded_width`). Padding columns are masked out of attention and pooling, so the
outputs are those of the full-length padding (to float round-off), while a 7-word sentence no longer
pays for 512 positions. ``serving_ids`` drops the padding columns of sequence tasks alike; for token
classification it answers every column it is given, as before. ``padding="fixed"`` keeps the old
full-length tensors.

The version directory also holds ``assets/vocab.txt``, ``assets/labels.txt``,
``assets.extra/tf_serving_warmup_requests`` and a model card (``README.md``, ``model_card.json``).

Example:
    >>> from ptft_keras.export.serving import export_model
    >>> version_dir = export_model(model, tokenizer, "saved_models/reviews",          # doctest: +SKIP
    ...                            task="classification", label_names=["neg", "pos"])
    >>> version_dir                                                                   # doctest: +SKIP
    PosixPath('saved_models/reviews/1')
    >>> import tensorflow as tf                                                       # doctest: +SKIP
    >>> serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]  # doctest: +SKIP
    >>> serve(text=tf.constant(["What a lovely film."]))["label"]                    # doctest: +SKIP
    <tf.Tensor: shape=(1,), dtype=string, numpy=array([b'pos'], dtype=object)>
"""
from __future__ import annotations

import functools
from pathlib import Path

import tensorflow as tf

from ptft_keras.data.tokenizer_packing import check_sequence_length
from ptft_keras.data.truncation import DEFAULT_HEAD_TOKENS, check_truncation, content_budget, pool_window_logits
from ptft_keras.errors import CheckpointError, ConfigError
from ptft_keras import storage
from ptft_keras.export.layout import new_version_dir, scratch_dir
from ptft_keras.export.model_card import describe_signature, write_model_card
from ptft_keras.export.portability import custom_op_types
from ptft_keras.export.predictions import LABELLED_TASKS, TOKEN_TASK, check_task, task_outputs
from ptft_keras.data.text_rewrites import check_mode, normalize_text
from ptft_keras.export.token_predictions import word_tag_outputs
from ptft_keras.export.warmup import write_warmup_requests

DEFAULT_SIGNATURE = "serving_default"
IDS_SIGNATURE = "serving_ids"
DEFAULT_WARMUP_TEXTS = ("This is a short example.", "", "Ünïcödé and emoji 🙂 text")
PADDINGS = ("dynamic", "fixed")
# Widths are rounded up to a multiple of this: at most 7 padding positions, 8 times fewer distinct
# shapes than exact widths (a new [batch, width] shape costs oneDNN ~2 ms of kernel creation once, and
# TF Serving's batcher multiplies the shapes by its batch sizes), widths tensor cores like on a GPU.
# On the 2-core CPU, exact widths were within noise of it (benchmarks/serving_latency.py: 8.2 against
# 8.7 ms for a 7-word sentence, 58 against 60 SST-2 sentences/s at batch 64); powers of two would pad
# a 33-token request to 64.
DEFAULT_PAD_TO_MULTIPLE_OF = 8


def padded_width(padding_mask, multiple: int = DEFAULT_PAD_TO_MULTIPLE_OF) -> tf.Tensor:
    """The columns a batch needs: up to its last real token in any row, rounded up to `multiple`,
    never more than it has (int32 scalar; an empty or all-padding batch needs `multiple` or fewer).

    Example:
        >>> mask = tf.constant([[1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [1] * 10 + [0, 0]])
        >>> int(padded_width(mask[:1], 2)), int(padded_width(mask, 8)), int(padded_width(mask, 1))
        (4, 12, 10)
    """
    mask = tf.convert_to_tensor(padding_mask)
    columns = tf.shape(mask, out_type=tf.int32)[1]
    positions = tf.range(1, columns + 1, dtype=tf.int32)[tf.newaxis, :]
    last = tf.reduce_max(tf.where(tf.not_equal(mask, 0), positions, 0))  # an empty batch: int32 minimum
    needed = tf.maximum(last, 1)
    return tf.minimum((needed + multiple - 1) // multiple * multiple, columns)


def trim_padding(features: dict, multiple: int = DEFAULT_PAD_TO_MULTIPLE_OF) -> dict:
    """`features` ([batch, length] each) without the trailing columns that only padding fills
    (`padded_width` of ``padding_mask``).

    Example:
        >>> features = {"token_ids": tf.constant([[101, 7, 102, 0, 0, 0]]), "padding_mask": tf.constant([[1, 1, 1, 0, 0, 0]])}
        >>> trim_padding(features, 2)["token_ids"].numpy().tolist()
        [[101, 7, 102, 0]]
    """
    width = padded_width(features["padding_mask"], multiple)
    return {name: value[:, :width] for name, value in features.items()}


class ServingModule(tf.Module):
    """The object saved as the SavedModel: model + core-ops tokenizer + task post-processing.

    `core_tokenizer(texts, pairs, sequence_length=...)` must return the model's int32 features
    (``token_ids``, ``padding_mask`` and, for BERT, ``segment_ids``) using core TensorFlow ops only;
    with a `truncation` other than head, `core_tokenizer.fit` (`CoreOpsTokenizer.fit`) prepares single texts.
    With ``padding="dynamic"`` the model reads only the columns the batch needs (`trim_padding`, rounded
    up to `pad_to_multiple_of`); ``"fixed"`` gives it all `sequence_length` columns.

    Example:
        >>> module = ServingModule(model, core, task="classification", label_names=["neg", "pos"],  # doctest: +SKIP
        ...                        sequence_length=128)
        >>> serve = module.signatures()["serving_default"]                                     # doctest: +SKIP
        >>> serve(text=tf.constant(["Loved it"]))["label"]                                     # doctest: +SKIP
    """

    def __init__(self, model, core_tokenizer, *, task: str, sequence_length: int, label_names=None,
                 text_normalization: str | None = None, pair: bool = False, asset_files: dict | None = None,
                 special_ids: dict | None = None, truncation: dict | None = None, padding: str = "dynamic",
                 pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF):
        super().__init__(name="ptft_serving")
        # The Keras model is not tracked: saving would walk every layer and trace Keras' own default
        # signature (which fails for a reloaded subclassed model). `signatures()` tracks the variables
        # the traced functions capture instead, as keras.export.ExportArchive does.
        self._call_model = functools.partial(model, training=False)
        self.tokenizer = core_tokenizer
        self.task = task
        self.label_names = list(label_names or [])
        self.sequence_length = int(sequence_length)
        self.text_normalization = check_mode(text_normalization)
        self.pair = bool(pair)
        self.special_ids = dict(special_ids or {})  # cls_id, sep_id, pad_id: packing words for token tasks
        # Single texts: {"truncation", "head_tokens", "window_stride", "window_pooling"} as in training.
        self.truncation = dict(truncation or {"truncation": "head"})
        self.padding = _check_padding(padding, pad_to_multiple_of)
        self.pad_to_multiple_of = int(pad_to_multiple_of)
        # Tracked assets are copied to assets/ and reachable after loading (loaded.vocab_file.asset_path).
        for name, path in (asset_files or {}).items():
            setattr(self, name, tf.saved_model.Asset(str(path)))
        self.feature_names = sorted(self.features(tf.constant(["a"]), tf.constant(["a"]) if pair else None))

    def features(self, text, text_pair=None) -> dict:
        """Raw strings [batch] (and their pairs) -> the model's int32 features [batch, sequence_length]."""
        text = normalize_text(text, self.text_normalization)
        if text_pair is not None:
            text_pair = normalize_text(text_pair, self.text_normalization)
        features = self.tokenizer(text, text_pair, sequence_length=self.sequence_length)
        return {name: tf.cast(value, tf.int32) for name, value in features.items()}

    def model_features(self, features) -> dict:
        """What the model reads: `features` without the padding columns no row needs (``padding="dynamic"``)."""
        if self.padding == "fixed":
            return features
        return trim_padding(features, self.pad_to_multiple_of)

    def logits(self, features, *, trim: bool = True) -> tf.Tensor:
        """The model's logits for `features` (`model_features` of them, unless ``trim=False``)."""
        outputs = self._call_model(self.model_features(features) if trim else features)
        if isinstance(outputs, dict):
            outputs = outputs["logits"]
        return outputs

    def predict(self, features) -> dict:
        """Model features -> the task's named outputs (`ptft_keras.export.predictions`); per-token
        outputs keep every column of `features`."""
        logits = self.logits(features, trim=self.task != TOKEN_TASK)
        return task_outputs(self.task, logits, label_names=self.label_names)

    def predict_texts(self, text) -> dict:
        """Single raw strings -> the task's named outputs, long texts fitted with the training truncation
        strategy (window logits pooled per text)."""
        settings = dict(self.truncation)
        if settings["truncation"] == "head":
            return self.predict(self.features(text))
        pooling = settings.pop("window_pooling", "mean")
        features, documents = self.tokenizer.fit(normalize_text(text, self.text_normalization),
                                                 sequence_length=self.sequence_length, **settings)
        logits = self.logits({name: tf.cast(value, tf.int32) for name, value in features.items()})
        if settings["truncation"] == "windows":
            logits = pool_window_logits(logits, documents, tf.shape(text)[0], pooling)
        return task_outputs(self.task, logits, label_names=self.label_names)

    def predict_words(self, text) -> dict:
        """Token classification: raw strings -> words, tags and entity spans (`token_predictions`)."""
        return word_tag_outputs(self.tokenizer, self.logits, normalize_text(text, self.text_normalization),
                                label_names=self.label_names, sequence_length=self.sequence_length,
                                segment_ids="segment_ids" in self.feature_names, **self.special_ids)

    def _text_function(self):
        # autograph=False: nothing here branches on tensors, and converting the tokenizer's and the
        # model's Python code would only add risk.
        text = tf.TensorSpec([None], tf.string, name="text")
        if self.task == TOKEN_TASK:
            return tf.function(self.predict_words, input_signature=[text], autograph=False)
        if self.pair:
            def serve(text, text_pair):
                return self.predict(self.features(text, text_pair))

            return tf.function(serve, input_signature=[text, tf.TensorSpec([None], tf.string, name="text_pair")],
                               autograph=False)

        return tf.function(self.predict_texts, input_signature=[text], autograph=False)

    def signatures(self) -> dict:
        """Signature name -> concrete function, for `tf.saved_model.save(module, path, signatures=...)`.

        The functions are deliberately not attributes of the module: saving would trace them again.
        The `tf.Variable`s they capture become `self.model_variables` (the raw variables, not Keras'
        wrappers: TF1-style loaders such as `saved_model_cli run` restore only those).
        """
        ids = tf.function(
            lambda features: self.predict(features),
            input_signature=[{n: tf.TensorSpec([None, None], tf.int32, name=n) for n in self.feature_names}],
            autograph=False,
        )
        functions = {DEFAULT_SIGNATURE: self._text_function().get_concrete_function(),
                     IDS_SIGNATURE: ids.get_concrete_function()}
        captured = {id(v): v for fn in functions.values() for v in fn.variables}
        self.model_variables = list(captured.values())
        return functions


def core_tokenizer_for(tokenizer, sequence_length: int):
    """The core-ops twin of a training `Tokenizer`: the same ids, without tensorflow_text ops."""
    from ptft_keras.export.core_tokenizer import CoreOpsTokenizer

    return CoreOpsTokenizer.from_tokenizer(tokenizer, sequence_length=sequence_length)


def _check_padding(padding: str, pad_to_multiple_of) -> str:
    if padding not in PADDINGS:
        raise ConfigError(f"padding={padding!r} is not one of {', '.join(PADDINGS)}")
    if isinstance(pad_to_multiple_of, bool) or not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1:
        raise ConfigError(f"pad_to_multiple_of={pad_to_multiple_of!r} must be a positive integer (1: no rounding)")
    return padding


def check_model_sequence_length(model, sequence_length: int, *, pair: bool) -> None:
    check_sequence_length(sequence_length, pair=pair)
    limit = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
    if limit is not None and sequence_length > limit:
        raise ConfigError(
            f"sequence_length {sequence_length} is longer than the model's {limit} positions; "
            f"pass sequence_length <= {limit}"
        )


# SequenceClassifier.problem_type -> export task
_PROBLEM_TASKS = {"single_label_classification": "classification", "multi_label_classification": "multilabel",
                  "regression": "regression"}


def _task_of(model, task, core, sequence_length: int):
    """`task`, else the model's: per-token logits mean token classification, else its problem_type."""
    if task:
        return task
    probe = model(core(tf.constant(["a"]), sequence_length=sequence_length), training=False)
    if len(probe.shape) == 3:
        return TOKEN_TASK
    return _PROBLEM_TASKS.get(getattr(model, "problem_type", None), "classification")


def checked_fitting(truncation: str, sequence_length: int, head_tokens: int, window_stride, window_pooling: str,
                    *, pair: bool, task: str) -> dict:
    """`fitting_settings`, after refusing a truncation the export cannot serve (ConfigError)."""
    check_truncation(truncation, content_budget(sequence_length), head_tokens=head_tokens, stride=window_stride)
    if truncation != "head" and (pair or task == TOKEN_TASK):
        raise ConfigError(f"truncation={truncation!r} is for single-text sequence tasks; sentence pairs and token "
                          "classification exports keep the head: pass truncation='head'")
    return fitting_settings(truncation, head_tokens, window_stride, window_pooling)


def fitting_settings(truncation: str, head_tokens: int, window_stride, window_pooling: str) -> dict:
    """The truncation settings an export records and serves with: only those `truncation` uses."""
    fitting = {"truncation": truncation}
    if truncation == "head_tail":
        fitting["head_tokens"] = int(head_tokens)
    if truncation == "windows":
        fitting.update(window_stride=window_stride, window_pooling=window_pooling)
    return fitting


def _write_lines(path: Path, lines) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def export_model(model, tokenizer, output, *, task: str | None = None, label_names=None,
                 sequence_length: int = 128, text_normalization: str | None = None, pair: bool = False,
                 metadata: dict | None = None, model_name: str | None = None, warmup_texts=None,
                 truncation: str = "head", head_tokens: int = DEFAULT_HEAD_TOKENS, window_stride: int | None = None,
                 window_pooling: str = "mean", padding: str = "dynamic",
                 pad_to_multiple_of: int = DEFAULT_PAD_TO_MULTIPLE_OF) -> Path:
    """Export `model` (a task model returning logits) with `tokenizer` in the graph; returns the version dir.

    Args:
        model: a built Keras task model, called as ``model(features) -> logits`` (or ``{"logits": ...}``).
        tokenizer: the training `Tokenizer`; the graph gets its core-ops twin
            (`ptft_keras.export.core_tokenizer.CoreOpsTokenizer`), which gives the same ids.
        output: the model's base directory (``saved_models/NAME``); the export lands in
            ``output/<max existing version + 1>``.
        task: ``classification``, ``multilabel``, ``regression`` or ``token-classification`` (see
            `ptft_keras.export.predictions`); default: token classification for a model with per-token
            logits, else from its ``problem_type`` (a `SequenceClassifier`), else classification.
        label_names: class (or BIO tag) names in id order; default: ``model.label_names``.
        sequence_length: texts are truncated (and padded) to this many tokens, specials included.
        text_normalization: a mode of `ptft_keras.data.text_rewrites`, the one used in training.
        pair: the model reads sentence pairs; the signature then also takes ``text_pair``.
        metadata: anything to record in the model card, e.g. ``{"training_config": {...}, "metrics": {...}}``.
        model_name: the TF Serving model name used in warmup requests and the card (default: the base dir name).
        warmup_texts: texts for ``assets.extra/tf_serving_warmup_requests``.
        truncation, head_tokens, window_stride, window_pooling: how single texts longer than
            `sequence_length` are fitted, as in training (`ptft_keras.data.truncation`): ``head``,
            ``tail``, ``head_tail`` or ``windows`` (window logits pooled per text in the graph).
            Pairs and token classification keep the head.
        padding: ``dynamic`` (default): each request is padded to its longest text (after truncation),
            rounded up to a multiple of `pad_to_multiple_of`, so short requests cost less; the outputs
            equal those of full-length padding to float round-off. ``fixed``: every request is padded to
            `sequence_length` (static shapes, e.g. for a compiler that needs them).
        pad_to_multiple_of: the rounding of the dynamic width (1: the exact longest text).

    Example:
        >>> export_model(model, tokenizer, "saved_models/reviews", label_names=["neg", "pos"])  # doctest: +SKIP
        PosixPath('saved_models/reviews/1')
    """
    text_normalization = check_mode(text_normalization)
    _check_padding(padding, pad_to_multiple_of)
    check_model_sequence_length(model, sequence_length, pair=pair)
    core = core_tokenizer_for(tokenizer, sequence_length)
    task = _task_of(model, task, core, sequence_length)
    label_names = list(label_names or getattr(model, "label_names", None) or []) if task in LABELLED_TASKS else None
    if task == TOKEN_TASK and pair:
        raise ConfigError("token classification exports take single texts; drop pair=True")
    fitting = checked_fitting(truncation, sequence_length, head_tokens, window_stride, window_pooling,
                              pair=pair, task=task)
    metadata = {**(metadata or {}), "truncation": fitting,
                "padding": {"padding": padding, "pad_to_multiple_of": int(pad_to_multiple_of)}}
    base = str(output) if storage.is_remote(output) else Path(output)  # Path() would fold gs:// into gs:/
    model_name = model_name or str(base).rstrip("/").rsplit("/", 1)[-1]
    warmup_texts = list(warmup_texts or DEFAULT_WARMUP_TEXTS)
    with scratch_dir() as scratch, new_version_dir(base) as staging:  # a killed export's scratch is cleaned later
        assets = {"vocab_file": _write_lines(Path(scratch) / "vocab.txt", tokenizer.vocabulary)}
        if label_names:
            assets["labels_file"] = _write_lines(Path(scratch) / "labels.txt", label_names)
        module = ServingModule(model, core, task=task, sequence_length=sequence_length, label_names=label_names,
                               text_normalization=text_normalization, pair=pair, asset_files=assets,
                               special_ids={"cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id,
                                            "pad_id": tokenizer.pad_token_id}, truncation=fitting,
                               padding=padding, pad_to_multiple_of=pad_to_multiple_of)
        sample = module.features(tf.constant(warmup_texts), tf.constant(warmup_texts) if pair else None)
        check_task(task, label_names, int(module.logits(sample).shape[-1]))
        signatures = module.signatures()
        tf.saved_model.save(module, str(staging.path), signatures=signatures)
        custom = custom_op_types(staging.path)
        if custom:
            raise CheckpointError(
                f"the exported graph uses ops that plain TensorFlow Serving lacks: {', '.join(sorted(custom))}; "
                "the string signature must use the core-ops tokenizer (ptft_keras.export.core_tokenizer)",
                path=staging.path,
            )
        text_request = {"text": warmup_texts, **({"text_pair": warmup_texts} if pair else {})}
        ids_request = {name: value.numpy().tolist() for name, value in sample.items()}
        write_warmup_requests(
            staging.path / "assets.extra" / "tf_serving_warmup_requests",
            [(DEFAULT_SIGNATURE, text_request), (IDS_SIGNATURE, ids_request)],
            model_name=model_name,
        )
        write_model_card(
            staging.path,
            model_name=model_name,
            task=task,
            label_names=label_names,
            sequence_length=sequence_length,
            text_normalization=module.text_normalization,
            signatures={name: describe_signature(fn) for name, fn in signatures.items()},
            example=text_request,
            metadata=metadata,
        )
    return staging.final
