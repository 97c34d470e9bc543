"""Fine-tuning throughput on SST-2: ptft_keras vs keras-hub's BertTextClassifier vs transformers (PyTorch).

Same checkpoint (all-MiniLM-L6-v2), same rows, batch size, learning rate and epochs for every runner;
training examples/s is measured over the whole `fit` (tokenization included), then dev accuracy.
Runners: ``ours`` (length buckets), ``ours_dynamic`` (pad to the longest in each batch), ``ours_xla``
(buckets + ``jit_compile``), ``keras_hub`` (BertTextClassifier with its preprocessor, sequence_length 64),
``transformers_dynamic`` / ``transformers_fixed64`` (PyTorch loop, `DataCollatorWithPadding` or padding to 64).
Peak RSS is the process's so far, so it only grows down the table.

    python benchmarks/finetune_throughput.py --rows 4000 --batch-size 32
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from common import SHARED, peak_rss_mib, print_table, read_tsv, write_json  # noqa: E402  (script dir on path)


def ours(checkpoint, train, dev, *, batch_size, epochs, lr, seed, padding="bucket", jit_compile=False):
    import keras

    import ptft_keras as ptft

    keras.utils.set_random_seed(seed)
    tokenizer = ptft.Tokenizer.from_pretrained(checkpoint)
    backbone = ptft.Backbone.from_pretrained(checkpoint)
    rows = [{"sentence": t, "label": str(y)} for t, y in zip(*train)]
    dev_rows = [{"sentence": t, "label": str(y)} for t, y in zip(*dev)]
    start = time.perf_counter()
    data = ptft.make_finetune_dataset(rows, tokenizer, text_column="sentence", label_column="label",
                                      batch_size=batch_size, padding=padding, shuffle=True, seed=seed,
                                      sequence_length=64)
    model = ptft.SequenceClassifier(backbone, label_names=data.label_vocabulary.labels)
    steps = epochs * math.ceil(len(rows) / batch_size)
    model.compile(optimizer=ptft.make_optimizer(lr, warmup_ratio=0.1, total_steps=steps), jit_compile=jit_compile)
    model.fit(data, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    dev_data = ptft.make_finetune_dataset(dev_rows, tokenizer, text_column="sentence", label_column="label",
                                          label_vocab=data.label_vocabulary, batch_size=64, sequence_length=64)
    _, acc = model.evaluate(dev_data, verbose=0)[:2]
    return {"train_seconds": seconds, "examples_per_s": epochs * len(rows) / seconds, "dev_accuracy": float(acc)}


def main() -> None:
    from baselines import keras_hub_classifier, transformers_classifier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "sst2"))
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runners", default="ours,ours_dynamic,ours_xla,keras_hub,transformers_dynamic,transformers_fixed64")
    parser.add_argument("--output", default="benchmarks/results/finetune_throughput.json")
    args = parser.parse_args()

    import ptft_keras as ptft

    checkpoint = str(ptft.default_checkpoint_path())
    train = read_tsv(f"{args.data}/train.tsv", limit=args.rows)
    dev = read_tsv(f"{args.data}/dev.tsv")
    common = dict(batch_size=args.batch_size, epochs=args.epochs, lr=args.lr, seed=args.seed)
    runners = {
        "ours": lambda: ours(checkpoint, train, dev, **common),
        "ours_dynamic": lambda: ours(checkpoint, train, dev, padding="dynamic", **common),
        "ours_xla": lambda: ours(checkpoint, train, dev, jit_compile=True, **common),
        "keras_hub": lambda: keras_hub_classifier(checkpoint, train, dev, sequence_length=64, **common),
        "transformers_dynamic": lambda: transformers_classifier(checkpoint, train, dev, padding="dynamic", **common),
        "transformers_fixed64": lambda: transformers_classifier(checkpoint, train, dev, padding="max_length",
                                                                max_length=64, **common),
    }
    rows = []
    for name in args.runners.split(","):
        print(f"running {name} ...", flush=True)
        result = runners[name]()
        rows.append({"runner": name, **result, "peak_rss_mib": peak_rss_mib()})
        print_table(rows[-1:], list(rows[-1]))
    print()
    print_table(rows, ["runner", "examples_per_s", "train_seconds", "dev_accuracy"])
    base = next((r for r in rows if r["runner"] == "keras_hub"), None)
    if base:
        for r in rows:
            r["speedup_vs_keras_hub"] = r["examples_per_s"] / base["examples_per_s"]
    write_json(args.output, {"rows_used": args.rows, **common, "results": rows})


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
