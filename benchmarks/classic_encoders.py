"""Classic encoders on SST-2 and IMDb: does pretraining a BiLSTM beat random init, and how fast is it beside MiniLM?

Every run goes through the functions the CLI calls: `jobs.pretrain_classic.pretrain_classic` (`ptft pretrain
--model bilstm --objective ...`), `jobs.finetune.finetune` (`ptft finetune`), `jobs.export.export_finetuned_dir`
(`ptft export`). Per dataset:

1. pretrain a BiLSTM (seed 0) on the unlabelled text of *all* training texts (held out: the first
   `--heldout-lines` lines): ``autoencoder`` and ``mlm`` for `--pretrain-steps` steps, ``word2vec`` for
   `--word2vec-epochs` epochs (default: the job's default), ``mlm_w2v`` masked-LM continued from the word2vec
   backbone; a whole-word gensim word2vec file for ``--word-vectors`` (variant ``word_vectors``);
2. fine-tune on the first `--rows` training rows for each of `--seeds` (batch 32, the job's defaults otherwise,
   `--finetune-options` on top for every variant alike), dev accuracy per seed, mean and spread:
   ``random_lr1e-4`` (the generic BERT learning rate), ``random`` (the BiLSTM defaults), then each pretrained
   backbone;
3. speed beside all-MiniLM-L6-v2 (the offline default checkpoint, fine-tuned on `--minilm-rows` rows for one
   epoch, for its training rate only): training examples/s (the job's train phase: fit with per-epoch
   validation), the exported SavedModel's batch-64 examples/s and batch-1 latency, parameter counts.

Prints markdown tables and writes JSON after every step (a partial run keeps what finished).

    python benchmarks/classic_encoders.py --dataset sst2 --seeds 0,1,2 --pretrain-steps 400
    python benchmarks/classic_encoders.py --dataset imdb --rows 1500 --epochs 10 --sequence-length 256 \
        --heldout-lines 50 --seeds 0,1,2 --no-speed
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import statistics
import time
from pathlib import Path

from common import ROOT, SHARED, print_table, write_json  # noqa: E402  (script dir on path)

DATASETS = {
    "sst2": dict(train=SHARED / "sst2" / "train.tsv", dev=SHARED / "sst2" / "dev.tsv", text="sentence",
                 label="label", delimiter="\t", normalization="none"),
    "imdb": dict(train=SHARED / "imdb" / "train.csv", dev=SHARED / "imdb" / "dev.csv", text="review",
                 label="sentiment", delimiter=",", normalization="html_breaks"),
}
VARIANTS = ("random_lr1e-4", "random", "autoencoder", "word2vec", "mlm", "mlm_w2v", "word_vectors")
OBJECTIVES = ("word2vec", "autoencoder", "mlm", "mlm_w2v")  # pretraining order: mlm_w2v starts from word2vec
SIZES = "embedding_dim=128,lstm_units=128,num_layers=1,dropout=0.1,pooling=max"


def read_rows(path, spec, limit=None):
    quoting = csv.QUOTE_NONE if spec["delimiter"] == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r[spec["text"]], r[spec["label"]]) for r in csv.DictReader(f, delimiter=spec["delimiter"],
                                                                          quoting=quoting)]
    return rows[:limit] if limit else rows


def write_rows(path, rows, spec):
    with open(path, "w", encoding="utf-8", newline="") as f:
        quoting = csv.QUOTE_NONE if spec["delimiter"] == "\t" else csv.QUOTE_MINIMAL
        writer = csv.writer(f, delimiter=spec["delimiter"], quoting=quoting, lineterminator="\n")
        writer.writerow([spec["text"], spec["label"]])
        writer.writerows(rows)
    return path


def write_corpus(path, rows, spec):
    """One training text a line (line breaks inside a text become spaces; IMDb's <br /> too)."""
    import re

    with open(path, "w", encoding="utf-8") as f:
        for text, _ in rows:
            if spec["normalization"] == "html_breaks":
                text = re.sub(r"(?i)<br\s*/?\s*>", " ", text)
            f.write(" ".join(text.split()) + "\n")
    return path


@contextlib.contextmanager
def generic_learning_rate():
    """Fine-tune a BiLSTM at the generic default (1e-4): the job's BiLSTM default switched off."""
    from ptft_keras.jobs import encoder_loading

    saved = dict(encoder_loading.CLASSIC_DEFAULTS)
    encoder_loading.CLASSIC_DEFAULTS.clear()
    try:
        yield
    finally:
        encoder_loading.CLASSIC_DEFAULTS.update(saved)


def quietly(function, *args, log=None, **kwargs):
    """Call `function`, sending its stdout to `log` (a file) instead of the table output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = function(*args, **kwargs)
    if log is not None:
        with open(log, "a", encoding="utf-8") as f:
            f.write(out.getvalue())
    return result, out.getvalue()


# --------------------------------------------------------------------------------------- pretraining
def pretrain(variant, corpus, work, args, log, start_from=None):
    """Pretrain one backbone; `variant` ``mlm_w2v`` is masked-LM continued from `start_from` (a backbone)."""
    from ptft_keras.jobs.pretrain_classic import ClassicSettings, pretrain_classic

    objective = "mlm" if variant == "mlm_w2v" else variant
    extra = {"word2vec_epochs": args.word2vec_epochs} if args.word2vec_epochs else {}
    settings = ClassicSettings(corpus=str(corpus), output=str(work / f"pretrain_{variant}"), objective=objective,
                               model=start_from or "bilstm", max_steps=args.pretrain_steps,
                               batch_size=args.pretrain_batch_size, sequence_length=args.pretrain_sequence_length,
                               seed=0, vocab_size=args.vocab_size, encoder_options=None if start_from else SIZES,
                               heldout_lines=args.heldout_lines, eval_every=args.pretrain_steps, log_every=50,
                               token_dropout=args.token_dropout if objective == "autoencoder" else 0.0,
                               word2vec_init=False, **extra)  # mlm_w2v: the two commands of the recipe instead
    start = time.perf_counter()
    summary, _ = quietly(pretrain_classic, settings, verbose=0, log=log)
    return {"objective": variant, "steps": summary["steps"], "heldout_loss": round(summary["loss"], 4),
            "initial_loss": round(summary["initial_loss"], 4), "seconds": round(time.perf_counter() - start, 1),
            "backbone": summary["backbone"], "found": summary.get("found")}


def word_vectors_file(corpus, work, args):
    """gensim skip-gram on whole words (lower-cased, split on white space) in word2vec text format."""
    from ptft_keras.models.word_vectors import train_word2vec

    sentences = [line.lower().split() for line in Path(corpus).read_text(encoding="utf-8").splitlines()]
    start = time.perf_counter()
    epochs = args.word2vec_epochs or 5
    model = train_word2vec(sentences, vector_size=128, epochs=epochs, seed=0, min_count=2)
    path = work / "words.w2v.txt"
    model.wv.save_word2vec_format(str(path), binary=False)
    return {"objective": "word_vectors (whole words)", "steps": epochs, "heldout_loss": None, "initial_loss": None,
            "seconds": round(time.perf_counter() - start, 1), "backbone": str(path)}


# ---------------------------------------------------------------------------------------- fine-tuning
def finetune_run(name, model, train, dev, work, args, spec, log, seed=0, **options):
    from ptft_keras.jobs.finetune import FinetuneConfig, finetune

    options = {**({"sequence_length": args.sequence_length} if getattr(args, "sequence_length", None) else {}),
               **json.loads(getattr(args, "finetune_options", None) or "{}"), **options}
    config = FinetuneConfig(model=model, train=str(train), validation=str(dev), output=str(work / f"ft_{name}"),
                            text_column=spec["text"], label_column=spec["label"], epochs=args.epochs,
                            batch_size=32, seed=seed, verbose=0, overwrite=True,
                            text_normalization=spec["normalization"], **options)
    result, out = quietly(finetune, config, log=log)
    epochs_run = len(result.history.get("loss", []))
    rows = len(read_rows(train, spec))
    train_seconds = result.report["timing"]["train"]
    return {
        "variant": name, "seed": seed, "model": model, "dev_accuracy": round(result.report["metrics"]["accuracy"], 4),
        "learning_rate": result.info.training_config["learning_rate"], "epochs_run": epochs_run,
        "sequence_length": result.info.sequence_length, "train_seconds": round(train_seconds, 1),
        "train_examples_per_s": round(rows * epochs_run / train_seconds, 1),
        "parameters": int(result.model.count_params()),
        "found": next((line for line in out.splitlines() if line.startswith("word vectors:")), None),
        "model_dir": str(work / f"ft_{name}"),
    }


# ---------------------------------------------------------------------------------------------- speed
def serving_speed(model_dir, texts, work, name, repeats=3, single=100):
    """Export with `ptft export`'s function, load in-process: batch-64 examples/s and batch-1 latency (ms)."""
    import tensorflow as tf

    from ptft_keras.jobs.export import export_finetuned_dir

    version_dir, _ = quietly(export_finetuned_dir, model_dir, work / f"serving_{name}")
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    batches = [tf.constant(texts[i:i + 64]) for i in range(0, len(texts), 64)]
    serve(text=batches[0])  # warm-up (traces)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            serve(text=batch)["logits"].numpy()
        best = min(best, time.perf_counter() - start)
    singles = [tf.constant(texts[i:i + 1]) for i in range(min(single, len(texts)))]
    serve(text=singles[0])
    latencies = []
    for batch in singles:
        start = time.perf_counter()
        serve(text=batch)["logits"].numpy()
        latencies.append(time.perf_counter() - start)
    return {"export": str(version_dir), "batch64_examples_per_s": round(len(texts) / best, 1),
            "batch1_latency_ms_p50": round(1000 * statistics.median(latencies), 2),
            "batch1_latency_ms_p90": round(1000 * sorted(latencies)[int(0.9 * len(latencies))], 2)}


# ------------------------------------------------------------------------------------------------ main
def summarize(rows):
    """Per variant (in run order): seeds, mean dev accuracy, sample standard deviation, min and max."""
    variants = {}
    for row in rows:
        variants.setdefault(row["variant"], []).append(row)
    table = []
    for name, runs in variants.items():
        accuracies = [r["dev_accuracy"] for r in runs]
        table.append({"variant": name, "seeds": len(runs), "mean": round(statistics.mean(accuracies), 4),
                      "sd": round(statistics.stdev(accuracies), 4) if len(runs) > 1 else 0.0,
                      "min": min(accuracies), "max": max(accuracies),
                      "epochs_run": "/".join(str(r["epochs_run"]) for r in runs),
                      "learning_rate": runs[0]["learning_rate"],
                      "train_examples_per_s": round(statistics.mean(r["train_examples_per_s"] for r in runs), 1)})
    reference = next((r["mean"] for r in table if r["variant"] == "random"), None)
    for row in table:
        row["vs_random"] = None if reference is None else round(row["mean"] - reference, 4)
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="sst2")
    parser.add_argument("--rows", type=int, default=8000, help="fine-tuning rows (the first N of train)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sequence-length", type=int, default=None, help="fine-tuning tokens (default: the job's)")
    parser.add_argument("--finetune-options", default=None,
                        help="JSON of FinetuneConfig fields for every variant alike, e.g. '{\"layer_lr_decay\": 0.5}'")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--pretrain-steps", type=int, default=400)
    parser.add_argument("--pretrain-batch-size", type=int, default=64)
    parser.add_argument("--pretrain-sequence-length", type=int, default=64)
    parser.add_argument("--word2vec-epochs", type=int, default=None, help="default: the pretraining job's default")
    parser.add_argument("--token-dropout", type=float, default=0.0, help="autoencoder: the denoising variant's share")
    parser.add_argument("--heldout-lines", type=int, default=500)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0", help="fine-tuning seeds, comma-separated (pretraining uses seed 0)")
    parser.add_argument("--minilm-rows", type=int, default=2000)
    parser.add_argument("--no-speed", action="store_true", help="skip the MiniLM / serving speed comparison")
    parser.add_argument("--work", default="/tmp/ptft_classic_bench")
    parser.add_argument("--out", default=None, help="JSON path (default benchmarks/results/classic_encoders_<dataset>.json)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    spec = DATASETS[args.dataset]
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    work = Path(args.work) / args.dataset
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"classic_encoders_{args.dataset}.json")
    log = work / "runs.log"
    payload = {"dataset": args.dataset, "settings": vars(args), "encoder": SIZES, "load_average_start": os.getloadavg(),
               "pretraining": [], "finetuning": [], "summary": [], "speed": []}

    def save():
        payload["summary"] = summarize(payload["finetuning"])
        payload["load_average_end"] = os.getloadavg()
        write_json(out, payload)

    all_train = read_rows(spec["train"], spec)
    train = write_rows(work / "train.tsv" if spec["delimiter"] == "\t" else work / "train.csv",
                       all_train[:args.rows], spec)
    corpus = write_corpus(work / "corpus.txt", all_train, spec)
    dev_rows = read_rows(spec["dev"], spec)
    print(f"{args.dataset}: fine-tuning on {args.rows} rows, dev {len(dev_rows)} rows; pretraining corpus "
          f"{len(all_train)} lines; runs logged to {log}", flush=True)

    backbones = {}
    needed = [o for o in OBJECTIVES if o in variants or (o == "word2vec" and "mlm_w2v" in variants)]
    for objective in needed:
        row = pretrain(objective, corpus, work, args, log,
                       start_from=backbones["word2vec"] if objective == "mlm_w2v" else None)
        backbones[objective] = row["backbone"]
        payload["pretraining"].append(row)
        print(f"pretrained {objective}: {row}", flush=True)
        save()
    if "word_vectors" in variants:
        row = word_vectors_file(corpus, work, args)
        payload["pretraining"].append(row)
        save()

    for seed in seeds:
        for name in variants:
            fresh = {"encoder_options": SIZES, "vocab_size": args.vocab_size}
            if name == "random_lr1e-4":
                with generic_learning_rate():
                    row = finetune_run(name, "bilstm", train, spec["dev"], work, args, spec, log, seed=seed, **fresh)
            elif name == "random":
                row = finetune_run(name, "bilstm", train, spec["dev"], work, args, spec, log, seed=seed, **fresh)
            elif name == "word_vectors":
                row = finetune_run(name, "bilstm", train, spec["dev"], work, args, spec, log, seed=seed, **fresh,
                                   word_vectors=str(work / "words.w2v.txt"))
            else:
                row = finetune_run(name, backbones[name], train, spec["dev"], work, args, spec, log, seed=seed)
            payload["finetuning"].append(row)
            print(f"fine-tuned {name} (seed {seed}): dev accuracy {row['dev_accuracy']} after {row['epochs_run']} "
                  f"epochs ({row['train_seconds']} s)", flush=True)
            save()

    if not args.no_speed:
        from ptft_keras.models.default_checkpoint import default_checkpoint_path

        texts = [text for text, _ in dev_rows]
        minilm_args = argparse.Namespace(**{**vars(args), "epochs": 1, "sequence_length": None,
                                            "finetune_options": None})
        minilm_train = write_rows(work / f"minilm_train{train.suffix}", all_train[:args.minilm_rows], spec)
        minilm = finetune_run("minilm", str(default_checkpoint_path()), minilm_train, spec["dev"], work, minilm_args,
                              spec, log)
        reference = next((r for r in payload["finetuning"] if r["variant"] == "random"), None)
        for row in [r for r in (reference, minilm) if r is not None]:
            speed = {"model": "BiLSTM (random init)" if row is reference else "all-MiniLM-L6-v2",
                     "parameters": row["parameters"], "train_examples_per_s": row["train_examples_per_s"],
                     "sequence_length": row["sequence_length"],
                     **serving_speed(row["model_dir"], texts, work, row["variant"])}
            payload["speed"].append(speed)
            save()

    print("\n### pretraining\n")
    print_table(payload["pretraining"], ["objective", "steps", "initial_loss", "heldout_loss", "seconds"])
    print("\n### fine-tuning (dev accuracy over seeds)\n")
    save()
    print_table(payload["summary"], ["variant", "seeds", "mean", "sd", "min", "max", "vs_random", "epochs_run",
                                     "learning_rate", "train_examples_per_s"])
    if payload["speed"]:
        print("\n### speed\n")
        print_table(payload["speed"], ["model", "parameters", "train_examples_per_s", "batch64_examples_per_s",
                                       "batch1_latency_ms_p50", "batch1_latency_ms_p90"])


if __name__ == "__main__":
    main()
