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
    python benchmarks/pretrain_memory.py --part lr --model mini --learning-rates 5e-4 1e-3 --append
    git archive ba0b9fd ptft_keras | tar -x -C /tmp/before   # the version that read the corpus whole
    python benchmarks/pretrain_memory.py --part memory --code /tmp/before --lines 2000 5000 20000 \
        --layouts flat --max-rss-mib 8000

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


def _rss_mib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS")), 0)
    except OSError:
        return 0


def run_pretrain(args: list[str], timeout: float, *, code: str | None = None, max_rss_mib: float | None = None) -> dict:
    """Run `ptft pretrain ARGS` in a child process: its JSON line, peak RSS (os.wait4) and wall time.

    `code`: a folder holding another `ptft_keras` to run (an older version); `max_rss_mib`: kill the child
    when its RSS passes this (the row then says so), so a run that holds its corpus cannot take the machine.
    """
    path = os.pathsep.join([p for p in (code, str(ROOT), os.environ.get("PYTHONPATH")) if p])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": os.environ.get(
        "CUDA_VISIBLE_DEVICES", ""), "PYTHONPATH": path}
    killed = False
    with tempfile.TemporaryFile(mode="w+") as log:
        began = time.perf_counter()
        # Run in `code` (python -c puts the working directory first on the path, before PYTHONPATH).
        child = subprocess.Popen([sys.executable, "-c", "import sys; from ptft_keras.cli import main; "
                                  "sys.exit(main(sys.argv[1:]))", "pretrain", *args], env=env, cwd=code or ROOT,
                                 stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            killed = bool(max_rss_mib) and _rss_mib(child.pid) > max_rss_mib
            if killed or time.perf_counter() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - began
        log.seek(0)
        output = log.read()
    peak = {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_seconds": seconds}
    if killed:
        return {**peak, "killed_above_mib": max_rss_mib, "tokens_per_second": None, "mlm_loss": None}
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code != 0:
        raise RuntimeError(f"ptft pretrain {' '.join(args)} failed ({exit_code}):\n{output[-3000:]}")
    return {**json.loads(output.strip().splitlines()[-1]), **peak}


def memory_part(args, sentences: list[str], folder: Path) -> list[dict]:
    rows = []
    for lines in args.lines:
        for blank in [{"docs": True, "flat": False}[kind] for kind in args.layouts]:
            corpus = write_corpus(folder / f"sst2-{lines}-{'docs' if blank else 'flat'}.txt", sentences, lines,
                                  blank_lines=blank)
            output = folder / f"run-{corpus.stem}"
            result = run_pretrain(["--model", "tiny", "--corpus", str(corpus), "--output", str(output),
                                   "--max-steps", str(args.steps), "--batch-size", "16", "--sequence-length", "32",
                                   "--eval-every", str(args.steps)], timeout=args.timeout, code=args.code,
                                  max_rss_mib=args.max_rss_mib)
            speed = result["tokens_per_second"]
            row = {"lines": lines, "blank_lines": "every 8 lines" if blank else "none",
                   "corpus_mib": round(corpus.stat().st_size / 2**20, 1),
                   "peak_rss_mib": round(result["peak_rss_mib"]), "tokens_per_s": speed and round(speed),
                   "ms_per_step": speed and round(16 * 32 / speed * 1000, 1),
                   "wall_s": round(result["wall_seconds"], 1),
                   "mlm_loss": result["mlm_loss"] and round(result["mlm_loss"], 3)}
            if result.get("killed_above_mib"):
                row["note"] = f"killed above {result['killed_above_mib']:g} MiB"
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
    candidates = [(rate, warmup) for rate in args.learning_rates for warmup in args.warmup_ratios]
    for rate, warmup in ([(1e-4, 0.01)] if args.old_default else []) + candidates:
        flags = ["--learning-rate", str(rate)] + ([] if warmup is None else ["--warmup-ratio", str(warmup)])
        result = run_pretrain(["--model", args.model, "--corpus", str(corpus), "--eval-corpus", str(heldout),
                               "--heldout-lines", str(len(dev)), "--output", str(folder / f"lr-{rate}-{warmup}"),
                               "--max-steps", str(args.lr_steps), "--batch-size", "32", "--sequence-length", "64",
                               "--eval-every", str(args.lr_steps), *flags], timeout=args.timeout)
        row = {"model": args.model, "learning_rate": rate,
               "warmup": "default" if warmup is None else f"{warmup:.0%}" + (" (old default)" if rate == 1e-4 and
                                                                              warmup == 0.01 else ""),
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
    parser.add_argument("--layouts", nargs="+", choices=("docs", "flat"), default=["docs", "flat"],
                        help="docs: a blank line every 8 lines; flat: no blank line at all")
    parser.add_argument("--code", help="run the ptft_keras in this folder instead (e.g. an older version: "
                                       "git archive COMMIT ptft_keras | tar -x -C DIR); results go to memory_before")
    parser.add_argument("--max-rss-mib", type=float, help="kill a run whose RSS passes this")
    parser.add_argument("--lr-steps", type=int, default=300)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[5e-4, 1e-3, 2e-3])
    parser.add_argument("--warmup-ratios", type=lambda v: None if v == "default" else float(v), nargs="+",
                        default=[None], help="warmup ratios of the candidates ('default': the job's default)")
    parser.add_argument("--model", default="tiny", help="the size pretrained from scratch in the learning-rate part")
    parser.add_argument("--no-old-default", dest="old_default", action="store_false",
                        help="leave out the old default (1e-4, warmup 1%%) in the learning-rate part")
    parser.add_argument("--append", action="store_true", help="add the learning-rate rows to those already saved")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    payload = {key: value for key, value in previous.items() if key not in ("machine", "argv")}
    memory_key = "memory_before" if args.code else "memory"
    with tempfile.TemporaryDirectory(prefix="pretrain-memory-") as tmp:
        folder = Path(tmp)
        if args.part in ("memory", "both"):
            sentences, _ = read_tsv(SST2 / "train.tsv")
            payload[memory_key] = {"command": "ptft pretrain --model tiny --corpus C --max-steps "
                                              f"{args.steps} --batch-size 16 --sequence-length 32",
                                   "code": args.code or "this checkout", "rows": memory_part(args, sentences, folder)}
        if args.part in ("lr", "both"):
            kept = payload.get("learning_rate", {}).get("rows", []) if args.append else []
            for row in kept:
                row.setdefault("model", "tiny")
            payload["learning_rate"] = {"command": "ptft pretrain --model SIZE --corpus sst2-train.txt --eval-corpus "
                                                   f"sst2-dev.txt --max-steps {args.lr_steps} --batch-size 32 "
                                                   "--sequence-length 64 --learning-rate R [--warmup-ratio W]",
                                        "rows": kept + learning_rate_part(args, folder)}
    for key, title in (("memory", "Memory and speed against corpus size"),
                       ("memory_before", "Before streaming (the corpus held whole)")):
        if payload.get(key):
            print(f"\n{title}\n")
            print_table(payload[key]["rows"], ["lines", "blank_lines", "corpus_mib", "peak_rss_mib", "tokens_per_s",
                                               "ms_per_step", "wall_s", "mlm_loss", "note"])
    if payload.get("learning_rate"):
        print("\nFrom scratch: held-out masked-LM loss after the same steps\n")
        print_table(payload["learning_rate"]["rows"], ["model", "learning_rate", "warmup", "steps", "heldout_mlm_loss",
                                                       "heldout_mlm_accuracy", "initial_mlm_loss"])
    write_json(RESULTS, payload)


if __name__ == "__main__":
    main()
