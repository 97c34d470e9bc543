"""IMDb fine-tuning throughput at 256 tokens: ptft_keras against a transformers (PyTorch) training loop.

Both fine-tune the same checkpoint (all-MiniLM-L6-v2) on the same IMDb reviews (`train.csv`, columns
`review` and `sentiment`), at the same maximum length (256 tokens, longer reviews cut to their head),
batch 16, AdamW lr 1e-4 (weight decay 0.01, 10% linear warmup then linear decay, gradient clipping
1.0), 2 epochs, on the same machine, one after the other. The score is training examples/s (epochs x
rows / seconds); dev accuracy on `dev.csv` at the same length checks that speed does not cost accuracy.
Each runner runs in a fresh subprocess, so its peak resident memory is its own.

* ``ours``: `encode_texts` + `fitted_dataset` (what `ptft finetune` feeds its model with: ``<br />``
  normalised away by ``--text-normalization html_breaks``, ``--truncation head``, length buckets),
  `SequenceClassifier` trained in full (no freezing), `make_optimizer`; timed from tokenization to
  the end of `fit` (tokenizing, tracing and training included). ``ours_dynamic``: padding to the
  longest in each batch; ``ours_xla``: buckets + ``jit_compile``; ``ours_last_block``: the classic recipe,
  every encoder block frozen but the last (`set_trainable_groups(model, 2)`), at ``--last-block-lr``.
* ``transformers_dynamic``: `baselines.transformers_classifier`, `AutoModelForSequenceClassification`
  with the fast tokenizer, random batches padded to their longest (dynamic padding), head truncation
  at 256 (the raw text, ``<br />`` included); the training loop is timed, tokenization included.

    python benchmarks/imdb_throughput.py
    python benchmarks/imdb_throughput.py --rows 32 --dev-rows 16 --epochs 1 --output /tmp/imdb.json  # a quick check

Writes `benchmarks/results/imdb_throughput.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SHARED, peak_rss_mib, print_table, write_json  # noqa: E402

RUNNERS = ("ours", "ours_dynamic", "ours_xla", "ours_last_block", "transformers_dynamic")
BASELINE = "transformers_dynamic"
LABEL_IDS = {"negative": 0, "positive": 1}  # the transformers loop's ids; ours learns the same sorted vocabulary


def read_imdb(path, limit=None):
    """(reviews, sentiment strings) of an IMDb CSV, read as `ptft finetune` reads it (`read_examples`)."""
    from ptft_keras.data.sources import read_examples

    examples = read_examples(str(path), text_column="review", label_column="sentiment")
    return examples.texts[:limit], examples.labels[:limit]


def ours(checkpoint, train, dev, *, batch_size, epochs, lr, seed, max_length, truncation, text_normalization,
         warmup_ratio, padding="bucket", jit_compile=False, last_block_only=False):
    import keras
    import numpy as np

    import ptft_keras as ptft
    from ptft_keras.data.truncation import encode_texts, fitted_dataset, pool_window_logits

    keras.utils.set_random_seed(seed)
    tokenizer = ptft.Tokenizer.from_pretrained(checkpoint)
    backbone = ptft.Backbone.from_pretrained(checkpoint)
    fit_options = dict(sequence_length=max_length, truncation=truncation, text_normalization=text_normalization)
    vocabulary = ptft.LabelVocabulary.learn(train[1])  # string labels -> ids, sorted: negative 0, positive 1
    start = time.perf_counter()
    fitted = encode_texts(tokenizer, train[0], **fit_options)
    targets = np.array([vocabulary.index(label) for label in train[1]], np.int32)
    data = fitted_dataset(fitted, tokenizer, targets, batch_size=batch_size, sequence_length=max_length,
                          padding=padding, shuffle=True, seed=seed)
    model = ptft.SequenceClassifier(backbone, label_names=vocabulary.labels)
    if last_block_only:  # the classic recipe: freeze every encoder block but the last, train it and the head
        from ptft_keras.training.freezing import set_trainable_groups

        set_trainable_groups(model, 2)
    steps = epochs * int(data.cardinality())
    model.compile(optimizer=ptft.make_optimizer(lr, warmup_ratio=warmup_ratio, total_steps=steps),
                  jit_compile=jit_compile)
    model.fit(data, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles itself
    seconds = time.perf_counter() - start
    # one prediction per review (window logits pooled when --truncation windows); dynamic padding keeps the
    # rows in order (buckets sort them by length)
    dev_fitted = encode_texts(tokenizer, dev[0], **fit_options)
    dev_data = fitted_dataset(dev_fitted, tokenizer, batch_size=64, sequence_length=max_length, padding="dynamic")
    logits = pool_window_logits(model.predict(dev_data, verbose=0), dev_fitted.document_ids,
                                dev_fitted.num_documents)
    predicted = np.asarray(keras.ops.argmax(logits, axis=-1))
    expected = np.array([vocabulary.index(label) for label in dev[1]])
    return {"train_seconds": seconds, "examples_per_s": epochs * len(train[0]) / seconds,
            "dev_accuracy": float((predicted == expected).mean()), "train_rows_fed": len(fitted)}


def transformers_dynamic(checkpoint, train, dev, *, batch_size, epochs, lr, seed, max_length, warmup_ratio, **_):
    from baselines import transformers_classifier

    as_ids = lambda split: (split[0], [LABEL_IDS[label] for label in split[1]])  # noqa: E731
    return transformers_classifier(checkpoint, as_ids(train), as_ids(dev), batch_size=batch_size, epochs=epochs,
                                   lr=lr, padding="dynamic", max_length=max_length, seed=seed,
                                   warmup_ratio=warmup_ratio)


def run_one(args) -> dict:
    """Run runner `args._run_one` in this process and return its result row."""
    name = args._run_one
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if name.startswith("transformers"):
        import torch  # noqa: F401 - before anything imports TensorFlow (see tests/conftest.py)
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    checkpoint = str(default_checkpoint_path())
    data = Path(args.data)
    train = read_imdb(data / "train.csv", args.rows)
    dev = read_imdb(data / "dev.csv", args.dev_rows)
    settings = dict(batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, seed=args.seed,
                    max_length=args.max_length, truncation=args.truncation,
                    text_normalization=args.text_normalization, warmup_ratio=args.warmup_ratio)
    if name == "transformers_dynamic":
        result = transformers_dynamic(checkpoint, train, dev, **settings)
    elif name in ("ours", "ours_dynamic", "ours_xla", "ours_last_block"):
        if name == "ours_last_block":
            settings["lr"] = args.last_block_lr
        result = ours(checkpoint, train, dev, padding="dynamic" if name == "ours_dynamic" else "bucket",
                      jit_compile=name == "ours_xla", last_block_only=name == "ours_last_block", **settings)
    else:
        raise SystemExit(f"unknown runner {name!r}; choose from {', '.join(RUNNERS)}")
    return {"runner": name, **result, "lr": settings["lr"], "peak_rss_mib": peak_rss_mib()}


def child_command(args, name: str, result_file: str) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--_run-one", name, "--_result-file", result_file,
               "--data", str(args.data), "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
               "--lr", repr(args.lr), "--max-length", str(args.max_length), "--seed", str(args.seed),
               "--truncation", args.truncation, "--text-normalization", args.text_normalization,
               "--warmup-ratio", repr(args.warmup_ratio), "--last-block-lr", repr(args.last_block_lr)]
    if args.rows:
        command += ["--rows", str(args.rows)]
    if args.dev_rows:
        command += ["--dev-rows", str(args.dev_rows)]
    return command


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "imdb"), help="folder with train.csv and dev.csv")
    parser.add_argument("--rows", type=int, default=None, help="first N training reviews (default: all 1,500)")
    parser.add_argument("--dev-rows", type=int, default=None, help="first N dev reviews (default: all 500)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--last-block-lr", type=float, default=1e-3,
                        help="ours_last_block: peak rate (only the last block and the head train)")
    parser.add_argument("--warmup-ratio", type=float, default=0.1, help="linear warmup share, then linear decay")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per example, [CLS] and [SEP] included")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runners", default="ours,transformers_dynamic",
                        help=f"comma-separated, from {', '.join(RUNNERS)}")
    parser.add_argument("--truncation", default="head", choices=("head", "tail", "head_tail", "windows"),
                        help="ours: how reviews longer than --max-length are cut (the transformers loop: head)")
    parser.add_argument("--text-normalization", default="html_breaks", choices=("none", "html_breaks"),
                        help="ours: rewrite texts before tokenizing (html_breaks: <br /> -> space)")
    parser.add_argument("--output", default="benchmarks/results/imdb_throughput.json")
    parser.add_argument("--_run-one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_result-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._run_one:  # child: one runner, result as JSON to --_result-file (or stdout)
        row = run_one(args)
        text = json.dumps(row)
        if args._result_file:
            Path(args._result_file).write_text(text)
        else:
            print(text)
        return 0

    names = [name.strip() for name in args.runners.split(",") if name.strip()]
    unknown = [name for name in names if name not in RUNNERS]
    if unknown:
        parser.error(f"unknown runner(s) {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
    train_rows = len(read_imdb(Path(args.data) / "train.csv", args.rows)[0])
    dev_rows = len(read_imdb(Path(args.data) / "dev.csv", args.dev_rows)[0])
    print(f"{train_rows} training reviews, {dev_rows} dev reviews, {args.epochs} epoch(s), batch {args.batch_size}, "
          f"max length {args.max_length}, {os.cpu_count()} CPUs; each runner in its own process", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            print(f"running {name} ...", flush=True)
            result_file = str(Path(folder) / f"{name}.json")
            done = subprocess.run(child_command(args, name, result_file))
            if done.returncode != 0 or not Path(result_file).is_file():
                print(f"{name} failed (exit status {done.returncode})", file=sys.stderr)
                rows.append({"runner": name, "error": f"exit status {done.returncode}"})
                continue
            rows.append(json.loads(Path(result_file).read_text()))
            print_table(rows[-1:], list(rows[-1]))

    base = next((r for r in rows if r["runner"] == BASELINE and "examples_per_s" in r), None)
    if base:
        for r in rows:
            if "examples_per_s" in r:
                r[f"speedup_vs_{BASELINE}"] = r["examples_per_s"] / base["examples_per_s"]
    print()
    print_table(rows, ["runner", "examples_per_s", "train_seconds", "dev_accuracy", "peak_rss_mib",
                       f"speedup_vs_{BASELINE}"])
    settings = {"train_rows": train_rows, "dev_rows": dev_rows, "batch_size": args.batch_size, "epochs": args.epochs,
                "lr": args.lr, "warmup_ratio": args.warmup_ratio, "decay": "linear", "max_length": args.max_length,
                "seed": args.seed, "truncation_ours": args.truncation, "truncation_transformers": "head",
                "text_normalization_ours": args.text_normalization, "padding_ours": "bucket (ours_dynamic: dynamic)",
                "padding_transformers": "dynamic", "data": str(args.data)}
    write_json(args.output, {"benchmark": "imdb_throughput", "settings": settings, "results": rows})
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
