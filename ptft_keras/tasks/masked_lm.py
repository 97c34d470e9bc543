"""The pretraining model: a backbone plus a masked-LM head (and, for BERT, an optional next-sentence head).

The masked-LM head gathers the encoder output at `mask_positions` *before* its transform and vocabulary
projection, so a batch scores only its `[B, P]` masked slots, never all `[B, L]` tokens. The projection
is tied to the backbone's token embedding and has its own bias (BERT, DistilBERT and keras-hub agree).

Loss and metrics cover the masked slots only, weighted by the `"mlm"` sample weights (0 for padded
slots). The loss is normalised by the *global* weight sum (an all-reduce over replicas), so one
device and `MirroredStrategy` over the same global batch compute the same loss and gradients.

The checkpoint's own head is loaded when it has one (`load_hf_head`) and exported under the same
Hugging Face names (`hf_head_tensors`), so `BertForMaskedLM` / `DistilBertForMaskedLM` read it back.

Example:
    >>> import numpy as np, keras_hub
    >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                                          hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
    >>> model = MaskedLM(backbone, nsp=True)
    >>> batch = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
    ...          "padding_mask": np.ones((2, 8), "int32"), "mask_positions": np.array([[1, 3]] * 2, "int32")}
    >>> outputs = model(batch)
    >>> tuple(outputs["mlm"].shape), tuple(outputs["nsp"].shape)
    ((2, 2, 50), (2, 2))
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from keras_hub.layers import MaskedLMHead

from ptft_keras.errors import CheckpointError
from ptft_keras.models.activations import keras_activation
from ptft_keras.models.hf_checkpoint import write_hf_checkpoint
from ptft_keras.models.hf_convert import export_hf_weights
from ptft_keras.training.accumulation import AccumulatingTrainStep

# Hugging Face tensor names of each model type's pretraining heads. Keys are our parts; a tuple lists
# accepted spellings (first = the one we write). Linear weights are [out, in] (PyTorch layout).
HF_HEAD_NAMES = {
    "bert": {
        "transform_kernel": ("cls.predictions.transform.dense.weight",),
        "transform_bias": ("cls.predictions.transform.dense.bias",),
        "norm_gamma": ("cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.gamma"),
        "norm_beta": ("cls.predictions.transform.LayerNorm.bias", "cls.predictions.transform.LayerNorm.beta"),
        "output_bias": ("cls.predictions.bias", "cls.predictions.decoder.bias"),
        "nsp_kernel": ("cls.seq_relationship.weight",),
        "nsp_bias": ("cls.seq_relationship.bias",),
    },
    "distilbert": {
        "transform_kernel": ("vocab_transform.weight",),
        "transform_bias": ("vocab_transform.bias",),
        "norm_gamma": ("vocab_layer_norm.weight",),
        "norm_beta": ("vocab_layer_norm.bias",),
        "output_bias": ("vocab_projector.bias",),
    },
}
# Prefix of the backbone's tensors and the architecture name in a checkpoint with pretraining heads.
HF_HEAD_MODELS = {
    "bert": ("bert.", {False: "BertForMaskedLM", True: "BertForPreTraining"}),
    "distilbert": ("distilbert.", {False: "DistilBertForMaskedLM"}),
}
MLM_PARTS = ("transform_kernel", "transform_bias", "norm_gamma", "norm_beta", "output_bias")
NSP_PARTS = ("nsp_kernel", "nsp_bias")


def global_sum(value):
    """`value` summed over the replicas in sync (itself outside a multi-replica step).

    Example:
        >>> float(global_sum(tf.constant(3.0)))
        3.0
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def masked_lm_token_losses(labels, logits):
    """Per-slot cross-entropy `[B, P]` of masked-LM `logits` `[B, P, V]` (computed in float32).

    Example:
        >>> losses = masked_lm_token_losses(np.array([[1, 2]]), np.zeros((1, 2, 4), "float16"))
        >>> losses.shape, round(float(losses[0, 0]), 4)  # uniform over 4 tokens: log(4)
        (TensorShape([1, 2]), 1.3863)
    """
    return keras.losses.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"), from_logits=True)


@keras.saving.register_keras_serializable(package="ptft_keras")
class MaskedLM(AccumulatingTrainStep, keras.Model):
    """Backbone + masked-LM head (+ next-sentence head when `nsp=True`, BERT only), for pretraining.

    Inputs are the backbone's inputs plus `mask_positions` (int32 `[B, P]`); outputs are
    `{"mlm": logits [B, P, vocab]}` and, with `nsp`, `"nsp": logits [B, 2]`. Train with
    `y={"mlm": [B, P] token ids, "nsp": [B]}` and `sample_weight={"mlm": [B, P]}`; `compile()` needs
    only an optimizer: the loss (masked-LM + NSP) and the metrics `mlm_loss`, `mlm_accuracy`
    (`nsp_loss`, `nsp_accuracy`) are built in.

    Args:
        backbone: a BERT or DistilBERT backbone (keras-hub's or ours) with a `token_embedding`.
        nsp: add the next-sentence head on the pooled output (BERT backbones only).
        hidden_act: Hugging Face activation name of the head transform (HF uses the model's `hidden_act`).
        layer_norm_epsilon: epsilon of the head's LayerNorm.

    Example:
        >>> import numpy as np, keras, keras_hub, tensorflow as tf
        >>> backbone = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=1, num_heads=2,
        ...                                          hidden_dim=16, intermediate_dim=32, max_sequence_length=8)
        >>> model = MaskedLM(backbone)
        >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3))
        >>> x = {"token_ids": np.ones((4, 8), "int32"), "segment_ids": np.zeros((4, 8), "int32"),
        ...      "padding_mask": np.ones((4, 8), "int32"), "mask_positions": np.array([[1, 2]] * 4, "int32")}
        >>> batch = (x, {"mlm": np.full((4, 2), 7)}, {"mlm": np.ones((4, 2), "float32")})
        >>> history = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0)
        >>> sorted(history.history)
        ['loss', 'mlm_accuracy', 'mlm_loss']
    """

    def __init__(self, backbone, nsp: bool = False, hidden_act: str | None = None,
                 layer_norm_epsilon: float | None = None, **kwargs):
        pooled = isinstance(backbone.output, dict) and "pooled_output" in backbone.output
        if nsp and not pooled:
            raise ValueError(
                f"nsp=True needs a backbone with a pooled output (BERT); {type(backbone).__name__} has none: "
                "pretrain DistilBERT with the masked-LM objective only (nsp=False)"
            )
        hidden_act = hidden_act or getattr(backbone, "hidden_act", "gelu")
        layer_norm_epsilon = layer_norm_epsilon or getattr(backbone, "layer_norm_epsilon", 1e-12)

        # === Layers ===
        self.backbone = backbone
        self.mlm_head = MaskedLMHead(
            token_embedding=backbone.token_embedding,
            intermediate_activation=keras_activation(hidden_act),
            layer_norm_epsilon=layer_norm_epsilon,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        self.nsp_head = None
        if nsp:
            self.nsp_head = keras.layers.Dense(
                2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                dtype=backbone.dtype_policy, name="nsp_head",
            )

        # === Functional model ===
        inputs = {**backbone.input, "mask_positions": keras.Input(shape=(None,), dtype="int32", name="mask_positions")}
        encoded = backbone(backbone.input)
        sequence = encoded["sequence_output"] if isinstance(encoded, dict) else encoded
        outputs = {"mlm": self.mlm_head(sequence, inputs["mask_positions"])}
        if self.nsp_head is not None:
            outputs["nsp"] = self.nsp_head(encoded["pooled_output"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config and metrics ===
        self.nsp = bool(nsp)
        self.hidden_act = hidden_act
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mlm_loss_metric = keras.metrics.Mean(name="mlm_loss")
        self.mlm_accuracy = keras.metrics.SparseCategoricalAccuracy(name="mlm_accuracy")
        if self.nsp:
            self.nsp_loss_metric = keras.metrics.Mean(name="nsp_loss")
            self.nsp_accuracy = keras.metrics.SparseCategoricalAccuracy(name="nsp_accuracy")

    def _without_unused_pooler(self, weights: list) -> list:
        """Without NSP the BERT pooler takes no part in pretraining: it is left out (and keeps its weights)."""
        pooler = getattr(self.backbone, "pooled_dense", None)
        if self.nsp_head is not None or pooler is None:
            return weights
        unused = {id(w) for w in pooler.weights}
        return [w for w in weights if id(w) not in unused]

    @property
    def trainable_weights(self):
        return self._without_unused_pooler(super().trainable_weights)

    @property
    def trainable_variables(self):
        return self._without_unused_pooler(super().trainable_variables)

    @property
    def model_type(self) -> str:
        """`"bert"` or `"distilbert"` (from the backbone's `model_type`, else its inputs)."""
        return getattr(self.backbone, "model_type", None) or (
            "bert" if "segment_ids" in self.backbone.input else "distilbert"
        )

    # --- loss and metrics ------------------------------------------------------------------------
    @staticmethod
    def _unpack(y, sample_weight):
        labels = y if isinstance(y, dict) else {"mlm": y}
        weights = sample_weight.get("mlm") if isinstance(sample_weight, dict) else sample_weight
        if weights is None:
            weights = ops.ones_like(labels["mlm"], dtype="float32")
        return labels, ops.cast(weights, "float32")

    def loss_normalizer(self, y, sample_weight=None, parts: int = 1) -> dict:
        """The loss denominators of a global batch, divided by `parts` (the micro-batches it is split in).

        `{"mlm": total masked-slot weight, "nsp": number of sequences}`, summed over replicas. Computed
        once per step, outside any loop (an all-reduce cannot run inside a replica's `while_loop`).
        """
        labels, weights = self._unpack(y, sample_weight)
        normalizer = {"mlm": ops.maximum(global_sum(ops.sum(weights)), 1e-6) / parts}
        if self.nsp:
            normalizer["nsp"] = global_sum(ops.cast(ops.shape(labels["nsp"])[0], "float32")) / parts
        return normalizer

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True, normalizer=None):
        """Masked-LM loss (mean over the weighted masked slots of the global batch) + NSP loss.

        Returns this replica's share, as Keras expects under `tf.distribute`: the replicas' shares sum
        to the global-batch loss. `normalizer` (from `loss_normalizer`) defaults to this batch's.
        """
        labels, weights = self._unpack(y, sample_weight)
        normalizer = normalizer or self.loss_normalizer(y, sample_weight)
        token_losses = masked_lm_token_losses(labels["mlm"], y_pred["mlm"])
        loss = ops.sum(token_losses * weights) / normalizer["mlm"]
        if self.nsp:
            nsp_losses = keras.losses.sparse_categorical_crossentropy(
                labels["nsp"], ops.cast(y_pred["nsp"], "float32"), from_logits=True
            )
            loss = loss + ops.sum(nsp_losses) / normalizer["nsp"]
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels, weights = self._unpack(y, sample_weight)
        logits = ops.cast(y_pred["mlm"], "float32")
        self.mlm_loss_metric.update_state(masked_lm_token_losses(labels["mlm"], logits), sample_weight=weights)
        self.mlm_accuracy.update_state(labels["mlm"], logits, sample_weight=weights)
        if self.nsp:
            nsp_logits = ops.cast(y_pred["nsp"], "float32")
            self.nsp_loss_metric.update_state(
                keras.losses.sparse_categorical_crossentropy(labels["nsp"], nsp_logits, from_logits=True)
            )
            self.nsp_accuracy.update_state(labels["nsp"], nsp_logits)
        return self.get_metrics_result()

    # --- Hugging Face head weights ---------------------------------------------------------------
    def _head_variables(self) -> dict:
        head = self.mlm_head
        parts = {
            "transform_kernel": head._intermediate_dense.kernel,
            "transform_bias": head._intermediate_dense.bias,
            "norm_gamma": head._intermediate_layer_norm.gamma,
            "norm_beta": head._intermediate_layer_norm.beta,
            "output_bias": head._bias,
        }
        if self.nsp_head is not None:
            parts.update(nsp_kernel=self.nsp_head.kernel, nsp_bias=self.nsp_head.bias)
        return parts

    def load_hf_head(self, tensors: dict, *, path=None) -> bool:
        """Copy the checkpoint's pretraining heads from HF `tensors` (PyTorch names); False if it has none.

        A checkpoint without a masked-LM head (e.g. a sentence-embedding model) keeps the freshly
        initialised head. A partial head, or one whose shapes do not fit, is a `CheckpointError`.
        The NSP head is loaded when both the checkpoint and this model have one.
        """
        names = HF_HEAD_NAMES[self.model_type]
        variables = self._head_variables()

        def find(part):
            return next((tensors[n] for n in names[part] if n in tensors), None)

        found = {part: find(part) for part in MLM_PARTS}
        if all(v is None for v in found.values()):
            return False
        missing = [names[p][0] for p, v in found.items() if v is None]
        if missing:
            raise CheckpointError(
                f"the masked-LM head is incomplete: missing {', '.join(missing)}; re-save the checkpoint "
                "with transformers' *ForMaskedLM class or remove its head tensors", path=path,
            )
        if self.nsp_head is not None and all(find(p) is not None for p in NSP_PARTS):
            found.update({p: find(p) for p in NSP_PARTS})
        for part, value in found.items():
            value = np.asarray(value, dtype="float32")
            if part.endswith("kernel"):
                value = value.T
            variable = variables[part]
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"head tensor {names[part][0]} has shape {value.shape}, the model expects "
                    f"{tuple(variable.shape)}: the head belongs to a different model size or vocabulary",
                    path=path, field=names[part][0],
                )
            variable.assign(value)
        return True

    def hf_head_tensors(self) -> dict:
        """This model's head weights under their Hugging Face names (PyTorch layout), for `save_pretrained`."""
        names = HF_HEAD_NAMES[self.model_type]
        tensors = {}
        for part, variable in self._head_variables().items():
            value = np.asarray(keras.ops.convert_to_numpy(variable), dtype="float32")
            tensors[names[part][0]] = np.ascontiguousarray(value.T if part.endswith("kernel") else value)
        return tensors

    def save_pretrained(self, directory, tokenizer=None):
        """Write a Hugging Face `*ForMaskedLM` (`BertForPreTraining` with NSP) checkpoint, atomically.

        The backbone's tensors under the `bert.` / `distilbert.` prefix plus the heads, so
        `transformers.AutoModelForMaskedLM`, `AutoModel` and `Backbone.from_pretrained` all load it and
        continued pretraining picks the head up (`load_hf_head`). Tokenizer files are added if given.
        Returns the directory.
        """
        prefix, architectures = HF_HEAD_MODELS[self.model_type]
        tensors = {prefix + name: value for name, value in export_hf_weights(self.backbone).items()}
        tensors.update(self.hf_head_tensors())
        config = {**self.backbone.hf_config(), "architectures": [architectures[self.nsp]]}
        write_extra = None if tokenizer is None else tokenizer.save_pretrained
        return write_hf_checkpoint(directory, config, tensors, write_extra=write_extra)

    # --- serialization ---------------------------------------------------------------------------
    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.layers.serialize(self.backbone),
            "nsp": self.nsp,
            "hidden_act": self.hidden_act,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
