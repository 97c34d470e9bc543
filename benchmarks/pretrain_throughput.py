"""Masked-LM training throughput: our stack vs keras-hub's BertMaskedLM, same model size, batch and machine.

Both sides train the same architecture (by default all-MiniLM-L6-v2's: 6 layers, hidden 384, its
30522-piece vocabulary; random weights, since only speed is measured) on the same synthetic text,
each with its own input pipeline running in `tf.data`:

* ours: `make_pretraining_dataset` (in-graph WordPiece, document packing, masking) -> `MaskedLM`
  (head on the masked positions only) with our AdamW, warmup/decay and clipping;
* keras-hub: `BertMaskedLMPreprocessor` (tokenize, pack, mask) -> `BertMaskedLM` with
  `keras.optimizers.AdamW`.

Tokens/s counts `batch x sequence_length` positions per optimizer step, timed after `--warmup`
steps (tracing and compilation). On a GPU the model-FLOPs utilisation (MFU) is printed too:
training FLOPs (3 x the forward matmuls: encoder, attention, head on the masked positions) per
second over the device's peak for the chosen precision.

    python benchmarks/pretrain_throughput.py --steps 30 --batch-size 32 --sequence-length 128

Prints a table and writes `benchmarks/results/pretrain_throughput.json`.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from common import print_table, write_json  # noqa: E402  (script dir on path)

from ptft_keras.data.pipeline import make_pretraining_dataset  # noqa: E402
from ptft_keras.data.tokenizer import Tokenizer  # noqa: E402
from ptft_keras.models.backbone import Backbone  # noqa: E402
from ptft_keras.models.default_checkpoint import default_checkpoint_path  # noqa: E402
from ptft_keras.models.hf_checkpoint import read_hf_config  # noqa: E402
from ptft_keras.models.sizes import NAMED_SIZES, size_config  # noqa: E402
from ptft_keras.tasks.masked_lm import MaskedLM  # noqa: E402
from ptft_keras.training.optimizer import make_optimizer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "pretrain_throughput.json"
PREDICTIONS = 20
# Dense peak FLOP/s by device-name fragment and compute dtype (float32 runs as TF32 on these GPUs).
PEAK_FLOPS = {
    "H200": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
    "H100": {"bfloat16": 989e12, "float16": 989e12, "float32": 494e12},
    "A100": {"bfloat16": 312e12, "float16": 312e12, "float32": 156e12},
    "L4": {"bfloat16": 121e12, "float16": 121e12, "float32": 60e12},
}


def model_dims(name: str) -> dict:
    """Backbone dimensions: `minilm` (the offline checkpoint's config) or a named size, with MiniLM's vocabulary."""
    if name in NAMED_SIZES:
        return size_config(name)
    config = read_hf_config(default_checkpoint_path())
    return {"num_layers": config["num_hidden_layers"], "hidden_dim": config["hidden_size"],
            "num_heads": config["num_attention_heads"], "intermediate_dim": config["intermediate_size"]}


def synthetic_documents(vocabulary, count: int, seed: int = 0) -> list[list[str]]:
    """Documents of sentences of whole-word vocabulary entries (the text does not matter, only its length)."""
    words = [w for w in vocabulary if w.isalpha() and w.islower() and len(w) > 1]
    rng = np.random.default_rng(seed)
    return [[" ".join(rng.choice(words, rng.integers(12, 30))) + "." for _ in range(rng.integers(5, 10))]
            for _ in range(count)]


def train_flops_per_step(dims: dict, vocabulary_size: int, batch: int, length: int) -> float:
    """Matmul FLOPs of one training step (forward x 3): projections, attention, feed-forward, MLM head."""
    hidden, inner, layers = dims["hidden_dim"], dims["intermediate_dim"], dims["num_layers"]
    per_token = layers * (2 * (4 * hidden * hidden + 2 * hidden * inner) + 4 * length * hidden)
    head = batch * PREDICTIONS * 2 * (hidden * hidden + hidden * vocabulary_size)
    return 3.0 * (batch * length * per_token + head)


class StepTimer(keras.callbacks.Callback):
    """Wall-clock time when training starts and at the end of every training batch."""

    def __init__(self):
        super().__init__()
        self.start, self.times = None, []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())


def measure(model, dataset, steps: int, warmup: int) -> dict:
    timer = StepTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], verbose=0, shuffle=False)
    elapsed = timer.times[-1] - timer.times[warmup - 1]
    return {"seconds_per_step": elapsed / steps, "first_steps_seconds": timer.times[warmup - 1] - timer.start}


def ours(args, dims, tokenizer, documents, dtype):
    keras.utils.set_random_seed(0)
    backbone = Backbone.from_size(None, vocabulary_size=tokenizer.vocab_size, max_sequence_length=512, dtype=dtype,
                                  **dims)
    model = MaskedLM(backbone)
    model.compile(optimizer=make_optimizer(1e-4, warmup_steps=10, total_steps=10_000), jit_compile=args.jit_compile)
    dataset = make_pretraining_dataset(documents, tokenizer, batch_size=args.batch_size,
                                       sequence_length=args.sequence_length, max_predictions_per_seq=PREDICTIONS,
                                       repeat=True, drop_remainder=True)
    return measure(model, dataset, args.steps, args.warmup)


def keras_hub_stack(args, dims, tokenizer, documents, dtype):
    keras.utils.set_random_seed(0)
    hub_tokenizer = keras_hub.models.BertTokenizer(vocabulary=list(tokenizer.vocabulary), lowercase=True)
    preprocessor = keras_hub.models.BertMaskedLMPreprocessor(
        hub_tokenizer, sequence_length=args.sequence_length, mask_selection_rate=0.15,
        mask_selection_length=PREDICTIONS)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocab_size, max_sequence_length=512,
                                             dtype=dtype, **dims)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01, global_clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy()], jit_compile=args.jit_compile)
    texts = [" ".join(document) for document in documents]  # one long text per example, truncated to the length
    dataset = (tf.data.Dataset.from_tensor_slices(texts).repeat().batch(args.batch_size, drop_remainder=True)
               .map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))
    return measure(model, dataset, args.steps, args.warmup)


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def peak_flops(device: str, precision: str) -> float | None:
    compute = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[precision]
    for fragment, peaks in PEAK_FLOPS.items():
        if fragment in device:
            return peaks[compute]
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm", help="minilm (all-MiniLM-L6-v2 dimensions) or a size name")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per stack")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps (tracing, compilation)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=128)
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    args.jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]

    dims = model_dims(args.model)
    tokenizer = Tokenizer.from_pretrained(default_checkpoint_path())
    documents = synthetic_documents(tokenizer.vocabulary, count=2000)
    dtype = None if args.precision == "float32" else args.precision
    device = device_name()
    flops = train_flops_per_step(dims, tokenizer.vocab_size, args.batch_size, args.sequence_length)
    peak = peak_flops(device, args.precision)
    tokens_per_step = args.batch_size * args.sequence_length

    rows = []
    for name, run in (("ptft_keras MaskedLM", ours), ("keras-hub BertMaskedLM", keras_hub_stack)):
        timing = run(args, dims, tokenizer, documents, dtype)
        rate = 1.0 / timing["seconds_per_step"]
        rows.append({"stack": name, "ms_per_step": 1000 * timing["seconds_per_step"],
                     "tokens_per_second": tokens_per_step * rate,
                     "mfu_percent": "-" if peak is None else 100 * flops * rate / peak,
                     "first_steps_seconds": timing["first_steps_seconds"]})

    print(f"\nmasked-LM training throughput on {device}: {args.model} "
          f"({dims['num_layers']} layers, hidden {dims['hidden_dim']}, vocabulary {tokenizer.vocab_size}), "
          f"batch {args.batch_size} x {args.sequence_length}, {args.precision}, jit_compile={args.jit_compile}, "
          f"{args.steps} timed steps after {args.warmup}")
    print_table(rows, ["stack", "ms_per_step", "tokens_per_second", "mfu_percent"])
    write_json(args.output, {
        "device": device, "model": args.model, "dims": dims, "vocabulary_size": tokenizer.vocab_size,
        "batch_size": args.batch_size, "sequence_length": args.sequence_length, "precision": args.precision,
        "jit_compile": args.jit_compile, "steps": args.steps, "warmup": args.warmup,
        "train_flops_per_step": flops, "peak_flops": peak, "results": rows,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "keras_hub": keras_hub.__version__},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
