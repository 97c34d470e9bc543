"""The reference side of parity tests: transformers (PyTorch) checkpoints and outputs.

Test-only: imports torch and transformers (the `test` extra). Import this module before doing
TensorFlow work in a test module.

Example:
    >>> import tempfile
    >>> from ptft_keras.testing.reference import padded_batch, reference_outputs, write_random_hf_checkpoint
    >>> directory = write_random_hf_checkpoint(tempfile.mkdtemp(), "bert")
    >>> batch = padded_batch(vocabulary_size=512, lengths=[5, 3])
    >>> reference_outputs(directory, batch)["sequence_output"].shape
    (2, 5, 64)
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
import transformers

# Small, odd-shaped configs: 2 layers, 4 heads of 16, a vocabulary and sequence length no real model has.
TINY_HF_CONFIGS = {
    "bert": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=96, max_position_embeddings=40, type_vocab_size=2),
    "distilbert": dict(vocab_size=512, dim=64, n_layers=2, n_heads=4, hidden_dim=96, max_position_embeddings=40),
}


def tiny_hf_config(model_type: str, **overrides) -> transformers.PretrainedConfig:
    """A transformers config of `TINY_HF_CONFIGS[model_type]` with `overrides` applied."""
    return transformers.AutoConfig.for_model(model_type, **{**TINY_HF_CONFIGS[model_type], **overrides})


def random_hf_model(model_type: str, model_class=transformers.AutoModel, seed: int = 0, **overrides):
    """A transformers model with *every* parameter random (biases and LayerNorm too, std 0.2).

    HF's own initialisation leaves biases at 0 and LayerNorm at 1/0, which would hide a
    mis-mapped bias or norm; random values make each tensor's placement visible in the outputs.
    """
    config = tiny_hf_config(model_type, **overrides)
    model = (model_class.from_config(config) if hasattr(model_class, "from_config") else model_class(config))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            centre = 1.0 if "norm" in name.lower() and name.endswith("weight") else 0.0
            parameter.copy_(centre + 0.2 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def write_random_hf_checkpoint(directory, model_type: str, model_class=transformers.AutoModel, seed: int = 0,
                               safe_serialization: bool = True, **overrides) -> Path:
    """Save `random_hf_model(...)` with transformers' own `save_pretrained`; returns the directory."""
    model = random_hf_model(model_type, model_class, seed, **overrides)
    if safe_serialization:
        model.save_pretrained(directory)
    else:  # transformers 5 writes only safetensors; a pickled checkpoint is written by hand
        model.config.save_pretrained(directory)
        torch.save(model.state_dict(), Path(directory) / "pytorch_model.bin")
    return Path(directory)


def padded_batch(vocabulary_size: int, lengths, sequence_length: int | None = None, seed: int = 0,
                 num_segments: int = 2) -> dict[str, np.ndarray]:
    """`token_ids`, `segment_ids`, `padding_mask` (int32): random ids, zero padding after each length."""
    rng = np.random.default_rng(seed)
    sequence_length = sequence_length or max(lengths)
    padding_mask = (np.arange(sequence_length)[None, :] < np.asarray(lengths)[:, None]).astype("int32")
    token_ids = rng.integers(1, vocabulary_size, size=padding_mask.shape).astype("int32") * padding_mask
    segment_ids = (np.arange(sequence_length)[None, :] >= np.asarray(lengths)[:, None] // 2).astype("int32")
    segment_ids = np.minimum(segment_ids, num_segments - 1) * padding_mask
    return {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}


def load_reference_model(directory):
    """`(model, loading_info)` of `transformers.AutoModel.from_pretrained(directory)` in float32."""
    model, info = transformers.AutoModel.from_pretrained(directory, output_loading_info=True, dtype=torch.float32)
    return model.eval(), info


def reference_outputs(model_or_directory, batch: dict) -> dict[str, np.ndarray]:
    """The HF base model's outputs for `batch`, named like ours (`sequence_output`, `pooled_output`)."""
    model = model_or_directory
    if not isinstance(model, torch.nn.Module):
        model, _ = load_reference_model(model_or_directory)
    inputs = {
        "input_ids": torch.as_tensor(batch["token_ids"], dtype=torch.long),
        "attention_mask": torch.as_tensor(batch["padding_mask"], dtype=torch.long),
    }
    if model.config.model_type == "bert":
        inputs["token_type_ids"] = torch.as_tensor(batch["segment_ids"], dtype=torch.long)
    with torch.no_grad():
        output = model(**inputs)
    outputs = {"sequence_output": output.last_hidden_state.numpy()}
    if getattr(output, "pooler_output", None) is not None:
        outputs["pooled_output"] = output.pooler_output.numpy()
    return outputs


def max_abs_diff(ours, reference, padding_mask=None) -> float:
    """Largest |ours - reference|, over non-padded positions only when `padding_mask` is given."""
    difference = np.abs(np.asarray(ours, dtype="float64") - np.asarray(reference, dtype="float64"))
    if padding_mask is not None:
        difference = difference[np.asarray(padding_mask).astype(bool)]
    return float(difference.max())


def write_tf_h5(path, tensors: dict[str, np.ndarray], model_scope: str) -> Path:
    """Write PyTorch-named `tensors` as transformers' TF `tf_model.h5` (Keras-2 HDF5 weights layout).

    `tensors` carry the main layer's prefix (`bert.` / `distilbert.`), as a TF model scopes them:
    `bert.encoder.layer.0.output.dense.weight` is stored as
    `{model_scope}/bert/encoder/layer_._0/output/dense/kernel:0`, transposed.
    """
    by_layer: dict[str, dict[str, np.ndarray]] = {}
    for name, value in tensors.items():
        parts = name.split(".")
        leaf, owner = parts[-1], parts[-2]
        if owner in ("LayerNorm",) or owner.endswith("layer_norm"):
            leaf = {"weight": "gamma", "bias": "beta"}[leaf]
        elif owner == "word_embeddings":
            leaf = "weight"
        elif owner.endswith("_embeddings"):
            leaf = "embeddings"
        elif leaf == "weight":
            leaf, value = "kernel", value.T
        scope = "/".join(parts[:-1]).replace("layer/", "layer_._")
        by_layer.setdefault(parts[0], {})[f"{model_scope}/{scope}/{leaf}:0"] = np.ascontiguousarray(value)
    path = Path(path)
    with h5py.File(path, "w") as h5:
        h5.attrs["layer_names"] = [name.encode("utf8") for name in by_layer]
        h5.attrs["backend"] = b"tensorflow"
        for layer_name, weights in by_layer.items():
            group = h5.create_group(layer_name)
            group.attrs["weight_names"] = [name.encode("utf8") for name in weights]
            for weight_name, value in weights.items():
                group.create_dataset(weight_name, data=value)
    return path
