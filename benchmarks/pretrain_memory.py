"""Pretraining memory and speed against corpus size, and the from-scratch learning-rate default.

Part 1 (memory): `ptft pretrain --model tiny` for `--steps` steps (batch 16 x 32 tokens, the command
of issue 21) on sentence-per-line corpora of SST-2 sentences repeated and shuffled to 20k, 200k and 2M
lines, with a blank line after every 8 lines (documents) and without any (one giant document before
streaming). Each run is a separate process; its peak RSS comes from `os.wait4`, its training speed
from the job's JSON line (`tokens_per_second`, measured over the training steps only).

Part 2 (learning rate): from scratch (`tiny`), 300 steps of 32 x 64 tokens on SST-2's training
sentences (one per line), held-out masked-LM loss on SST-2's dev sentences (`--eval-corpus`), for the
old default (1e-4, warmup 1%) and candidate rates; the lowest loss sets `FROM_SCRATCH_LEARNING_RATE`.

    python benchmarks/pretrain_memory.py                      # both parts
    python benchmarks/pretrain_memory.py --part memory --lines 20000 200000
    python benchmarks/pretrain_memory.py --part lr --learning-rates 1e-4 5e-4 1e-3

Prints markdown tables and writes `benchmarks/results/pretrain_memory.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SHARED, print_table, read_tsv, write_json

RESULTS = Path(__file__).parent / "results" / "pretrain_memory.json"
SST2 = SHARED / "sst2"
LINES_PER_DOCUMENT = 8


def write_corpus(path: Path, sentences: list[str], lines: int, *, blank_lines: bool, seed: int = 0) -> Path:
    """`lines` sentences (SST-2's, reshuffled on every pass), one per line, streamed to `path`."""
    rng = random.Random(seed)
    order = list(range(len(sentences)))
    with path.open("w", encoding="utf-8") as stream:
        written = 0
        while written < lines:
            rng.shuffle(order)
            for index in order[: lines - written]:
                stream.write(" ".join(sentences[index].split()) + "\n")
                written += 1
                if blank_lines and written % LINES_PER_DOCUMENT == 0:
                    stream.write("\n")
    return path


def run_pretrain(args: list[str], timeout: float) -> dict:
    """Run `ptft pretrain ARGS` in a child process: its JSON line, peak RSS (os.wait4) and wall time."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get(
        "CUDA_VISIBLE_DEVICES", ""), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryFile(mode="w+") as log:
        began = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "ptft_keras.cli", "pretrain", *args], env=env,
                                 stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.2)
        seconds = time.perf_counter() - began
        log.seek(0)
        output = log.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"ptft pretrain {' '.join(args)} failed ({code}):\n{output[-3000:]}")
    result = json.loads(output.strip().splitlines()[-1])
    return {**result, "peak_rss_mib": usage.ru_maxrss / 1024, "wall_seconds": seconds}


def memory_part(args, sentences: list[str], folder: Path) -> list[dict]:
    rows = []
    for lines in args.lines:
        for blank in (True, False):
            corpus = write_corpus(folder / f"sst2-{lines}-{'docs' if blank else 'flat'}.txt", sentences, lines,
                                  blank_lines=blank)
            output = folder / f"run-{corpus.stem}"
            result = run_pretrain(["--model", "tiny", "--corpus", str(corpus), "--output", str(output),
                                   "--max-steps", str(args.steps), "--batch-size", "16", "--sequence-length", "32",
                                   "--eval-every", str(args.steps)], timeout=args.timeout)
            row = {"lines": lines, "blank_lines": "every 8 lines" if blank else "none",
                   "corpus_mib": round(corpus.stat().st_size / 2**20, 1),
                   "peak_rss_mib": round(result["peak_rss_mib"]), "tokens_per_s": round(result["tokens_per_second"]),
                   "ms_per_step": round(16 * 32 / result["tokens_per_second"] * 1000, 1),
                   "wall_s": round(result["wall_seconds"], 1), "mlm_loss": round(result["mlm_loss"], 3)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            corpus.unlink()
    return rows


def learning_rate_part(args, folder: Path) -> list[dict]:
    train, _ = read_tsv(SST2 / "train.tsv")
    dev, _ = read_tsv(SST2 / "dev.tsv")
    corpus = write_corpus(folder / "sst2-train.txt", train, len(train), blank_lines=False)
    heldout = write_corpus(folder / "sst2-dev.txt", dev, len(dev), blank_lines=False)
    rows = []
    for rate, warmup in [(1e-4, 0.01)] + [(rate, None) for rate in args.learning_rates]:
        flags = ["--learning-rate", str(rate)] + ([] if warmup is None else ["--warmup-ratio", str(warmup)])
        result = run_pretrain(["--model", "tiny", "--corpus", str(corpus), "--eval-corpus", str(heldout),
                               "--heldout-lines", str(len(dev)), "--output", str(folder / f"lr-{rate}-{warmup}"),
                               "--max-steps", str(args.lr_steps), "--batch-size", "32", "--sequence-length", "64",
                               "--eval-every", str(args.lr_steps), *flags], timeout=args.timeout)
        row = {"learning_rate": rate, "warmup": "1% (old default)" if warmup is not None else "default",
               "steps": result["steps"], "heldout_mlm_loss": round(result["mlm_loss"], 3),
               "heldout_mlm_accuracy": round(result["mlm_accuracy"], 3),
               "initial_mlm_loss": round(result["initial_mlm_loss"], 3)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("memory", "lr", "both"), default="both")
    parser.add_argument("--lines", type=int, nargs="+", default=[20_000, 200_000, 2_000_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr-steps", type=int, default=300)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[1e-4, 5e-4, 1e-3])
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    payload = {key: previous.get(key) for key in ("memory", "learning_rate") if previous.get(key)}
    with tempfile.TemporaryDirectory(prefix="pretrain-memory-") as tmp:
        folder = Path(tmp)
        if args.part in ("memory", "both"):
            sentences, _ = read_tsv(SST2 / "train.tsv")
            payload["memory"] = {"command": "ptft pretrain --model tiny --corpus C --max-steps "
                                            f"{args.steps} --batch-size 16 --sequence-length 32",
                                 "rows": memory_part(args, sentences, folder)}
        if args.part in ("lr", "both"):
            payload["learning_rate"] = {"command": "ptft pretrain --model tiny --corpus sst2-train.txt --eval-corpus "
                                                   f"sst2-dev.txt --max-steps {args.lr_steps} --batch-size 32 "
                                                   "--sequence-length 64 --learning-rate R",
                                        "rows": learning_rate_part(args, folder)}
    if payload.get("memory"):
        print("\nMemory and speed against corpus size\n")
        print_table(payload["memory"]["rows"], ["lines", "blank_lines", "corpus_mib", "peak_rss_mib", "tokens_per_s",
                                                "ms_per_step", "wall_s", "mlm_loss"])
    if payload.get("learning_rate"):
        print("\nFrom scratch: held-out masked-LM loss after the same steps\n")
        print_table(payload["learning_rate"]["rows"], ["learning_rate", "warmup", "steps", "heldout_mlm_loss",
                                                       "heldout_mlm_accuracy", "initial_mlm_loss"])
    write_json(RESULTS, payload)


if __name__ == "__main__":
    main()
