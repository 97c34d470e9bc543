"""Our fine-tuning defaults against a plain transformers (PyTorch) loop, seeds and one-at-a-time ablations.

Each run fine-tunes all-MiniLM-L6-v2 (the offline default checkpoint) on the first `--rows` training rows for
`--epochs` epochs at batch 32, AdamW `--lr` with 10% warmup, weight decay 0.01, and scores dev after every
epoch. ``ours`` runs go through `jobs.finetune.finetune` (what `ptft finetune` calls) with dev as
`--validation`; the variants change one default each:

* ``default``: the job's defaults;
* ``no_head_only``: ``freeze_steps=0`` (no head-only warmup stage);
* ``no_llrd``: ``layer_lr_decay=1`` (one learning rate for every block);
* ``plain``: both of the above (the transformers loop's schedule);
* ``head``: ``truncation=head`` (the transformers loop's; at 256 tokens and more ours is head_tail);
* ``cls`` / ``mean`` / ``pooled``: that ``pooling`` instead of ``auto`` (the checkpoint's own pooling: mean for
  all-MiniLM-L6-v2 since issue 22; BERT's pooled output before);
* ``len64``: ``sequence_length=64`` instead of the 95th-percentile rule (the transformers loop's max length);
* ``no_head_dropout``: ``head_dropout=0``;
* ``lr5e-5`` / ``lr2e-4``: another peak learning rate;
* any ``name=JSON`` given to `--variants` (FinetuneConfig fields), e.g. ``'new={"freeze_steps": 0}'``; a JSON
  with several fields needs `;` between the variants (``--variants 'default;new={"a": 1, "b": 2}'``).

``transformers``: `baselines.transformers_classifier`, AutoModelForSequenceClassification with the same
rows, batch, learning rate, warmup, weight decay and epochs, dynamic padding, `--max-length` tokens.

Reported per run: dev accuracy after the last epoch and at the best epoch (ours restores the best epoch's
weights; for both, the best epoch is picked on dev itself, so "best" is optimistic for both alike).
JSON is written after every run, so a partial run keeps what finished; `--resume` skips runs already in it.

    python benchmarks/accuracy_ablation.py --dataset sst2 --seeds 0,1,2 --variants default,transformers
    python benchmarks/accuracy_ablation.py --dataset sst2 --seeds 0 --variants no_head_only,no_llrd,cls,len64
    python benchmarks/accuracy_ablation.py --dataset imdb --rows 1500 --sequence-length 256 --max-length 256 \\
        --seeds 0 --variants default,transformers --output benchmarks/results/accuracy_ablation_imdb.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from classic_encoders import DATASETS, read_rows  # noqa: E402  (script dir on path)
from common import print_table, write_json  # noqa: E402

VARIANTS = {
    "default": {},
    "no_head_only": {"freeze_steps": 0},
    "no_llrd": {"layer_lr_decay": 1.0},
    "plain": {"freeze_steps": 0, "layer_lr_decay": 1.0},
    "head": {"truncation": "head"},
    "cls": {"pooling": "cls"},
    "mean": {"pooling": "mean"},
    "pooled": {"pooling": "pooled"},
    "len64": {"sequence_length": 64},
    "no_head_dropout": {"head_dropout": 0.0},
    "lr5e-5": {"learning_rate": 5e-5},
    "lr2e-4": {"learning_rate": 2e-4},
}


def ours(name, options, seed, work, args, spec):
    from ptft_keras.jobs.finetune import FinetuneConfig, finetune

    settings = {"epochs": args.epochs, "learning_rate": args.lr, **options}
    if args.sequence_length and "sequence_length" not in options:
        settings["sequence_length"] = args.sequence_length
    config = FinetuneConfig(model=args.checkpoint, train=str(spec["train"]), validation=str(spec["dev"]),
                            max_train_examples=args.rows, output=str(work / f"{name}_{seed}"), text_column=spec["text"],
                            label_column=spec["label"], batch_size=32, seed=seed, verbose=0, overwrite=True,
                            text_normalization=spec["normalization"], **settings)
    start = time.perf_counter()
    result = finetune(config)
    per_epoch = [round(float(a), 4) for a in result.history.get("val_accuracy", [])]
    return {"last": per_epoch[-1], "best": round(result.report["metrics"]["accuracy"], 4),
            "per_epoch": per_epoch, "seconds": round(time.perf_counter() - start, 1),
            "sequence_length": result.info.sequence_length, "options": settings,
            "timing": result.report.get("timing")}


def transformers(seed, train_rows, dev_rows, args, spec):
    from baselines import transformers_classifier

    names = sorted({label for _, label in train_rows})
    as_ids = lambda rows: ([t for t, _ in rows], [names.index(label) for _, label in rows])  # noqa: E731
    start = time.perf_counter()
    result = transformers_classifier(args.checkpoint, as_ids(train_rows), as_ids(dev_rows), batch_size=32,
                                     epochs=args.epochs, lr=args.lr, padding="dynamic", max_length=args.max_length,
                                     seed=seed, warmup_ratio=0.1, dev_every_epoch=True)
    per_epoch = [round(a, 4) for a in result["dev_accuracy_per_epoch"]]
    return {"last": per_epoch[-1], "best": max(per_epoch), "per_epoch": per_epoch,
            "seconds": round(time.perf_counter() - start, 1), "sequence_length": args.max_length,
            "options": {"max_length": args.max_length, "padding": "dynamic"}}


def summary(runs):
    rows = []
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        row = {"variant": variant, "seeds": ",".join(str(r["seed"]) for r in mine)}
        for key in ("last", "best"):
            values = [r[key] for r in mine]
            row[f"{key}_mean"] = round(statistics.mean(values), 4)
            row[f"{key}_spread"] = round(max(values) - min(values), 4)
        row["seconds"] = round(statistics.mean(r["seconds"] for r in mine))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="sst2")
    parser.add_argument("--rows", type=int, default=8000, help="first N training rows")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--variants", default="default,transformers",
                        help=f"comma-separated (or ;-separated): transformers, {', '.join(VARIANTS)} or name=JSON "
                        "options")
    parser.add_argument("--sequence-length", type=int, default=None, help="ours: --sequence-length for every variant")
    parser.add_argument("--max-length", type=int, default=64, help="transformers: max tokens")
    parser.add_argument("--checkpoint", default=None, help="default: the offline all-MiniLM-L6-v2")
    parser.add_argument("--output", default=None, help="default: benchmarks/results/accuracy_ablation_DATASET.json")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --output, skip them")
    args = parser.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch  # noqa: F401 - before TensorFlow (see tests/conftest.py)

    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    args.checkpoint = args.checkpoint or str(default_checkpoint_path())
    spec = DATASETS[args.dataset]
    output = Path(args.output or f"benchmarks/results/accuracy_ablation_{args.dataset}.json")
    runs = json.loads(output.read_text())["runs"] if args.resume and output.exists() else []
    done = {(r["variant"], r["seed"]) for r in runs}
    variants = []
    for item in args.variants.split(";" if ";" in args.variants else ","):
        name, _, raw = item.partition("=")
        if name != "transformers" and not raw and name not in VARIANTS:
            sys.exit(f"unknown variant {name!r}: choose transformers, {', '.join(VARIANTS)} or name=JSON")
        variants.append((name, json.loads(raw) if raw else VARIANTS.get(name, {})))

    train_rows = read_rows(spec["train"], spec, args.rows)
    dev_rows = read_rows(spec["dev"], spec)
    with tempfile.TemporaryDirectory(prefix="ptft-ablation-") as tmp:
        work = Path(tmp)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for name, options in variants:
                if (name, seed) in done:
                    continue
                print(f"== {name} seed {seed}", flush=True)
                row = (transformers(seed, train_rows, dev_rows, args, spec) if name == "transformers"
                       else ours(name, options, seed, work, args, spec))
                runs.append({"variant": name, "seed": seed, **row})
                print(json.dumps(runs[-1]), flush=True)
                write_json(output, {"dataset": args.dataset, "rows": args.rows, "epochs": args.epochs, "lr": args.lr,
                                    "checkpoint": args.checkpoint, "runs": runs, "summary": summary(runs)})
    print_table(summary(runs), ["variant", "seeds", "last_mean", "last_spread", "best_mean", "best_spread", "seconds"])


if __name__ == "__main__":
    main()
