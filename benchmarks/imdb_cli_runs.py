"""Issue 10's IMDb acceptance runs: the `ptft finetune` default command, once per truncation strategy.

Each variant is the command below with one change (every other setting default: sequence length chosen
from the data, 3 epochs, batch 32, length buckets, freeze-then-unfreeze), run in its own process so its
wall time and peak resident memory are its own:

    ptft finetune --model <all-MiniLM-L6-v2> --train ../shared/data/imdb/train.csv \\
        --validation ../shared/data/imdb/dev.csv --text-column review --label-column sentiment \\
        --output DIR --seed 1

Variants: ``default`` (no change: ``--truncation auto`` = head_tail), ``head``, ``tail``, ``head_tail``,
``windows`` (``--truncation ...``) and ``last_block`` (``--train-top-blocks 1 --learning-rate 1e-3``: every
encoder block frozen but the last, at the recipe's higher rate). Each takes 15-40 minutes on 2 CPU cores.

    python benchmarks/imdb_cli_runs.py --variants default,tail,windows,last_block
    python benchmarks/imdb_cli_runs.py --rows 32 --dev-rows 16 --variants head,last_block --output /tmp/imdb_cli.json

`--collect NAME=DIR` (repeatable) reads runs made by hand instead, as
``/usr/bin/time -v ptft finetune ... --output DIR > DIR.log``: the metrics from DIR, the wall time and peak
memory from GNU time's report in DIR.log.

Writes `benchmarks/results/imdb_cli_runs.json`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SHARED, print_table, write_json  # noqa: E402

VARIANTS = {
    "default": [],
    "head": ["--truncation", "head"],
    "tail": ["--truncation", "tail"],
    "head_tail": ["--truncation", "head_tail"],
    "windows": ["--truncation", "windows"],
    "last_block": ["--train-top-blocks", "1", "--learning-rate", "1e-3"],
}
COLUMNS = ["variant", "truncation", "sequence_length", "best_dev_accuracy", "best_epoch", "dev_by_epoch",
           "wall_s", "peak_rss_gib"]


def command(variant, checkpoint, train, dev, output, seed):
    return [sys.executable, "-m", "ptft_keras.cli", "finetune", "--model", str(checkpoint), "--train", str(train),
            "--validation", str(dev), "--text-column", "review", "--label-column", "sentiment", "--output",
            str(output), "--seed", str(seed), "--verbose", "2", *VARIANTS[variant]]


def summarize(variant, run_dir, wall_s, peak_rss_kib) -> dict:
    """One table row from a finished run directory (metrics.json, training_config.json)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((run_dir / "training_config.json").read_text(encoding="utf-8"))
    by_epoch = metrics["history"].get("val_accuracy", [])
    best = max(range(len(by_epoch)), key=by_epoch.__getitem__) if by_epoch else None
    truncation = config["truncation"] + (f" {config['head_tokens']}" if config["truncation"] == "head_tail" else "")
    return {"variant": variant, "truncation": truncation, "sequence_length": config["sequence_length"],
            "best_dev_accuracy": metrics["metrics"]["accuracy"], "best_epoch": None if best is None else best + 1,
            # Keras' per-epoch val_accuracy counts windows for `windows`; the best dev accuracy is per review
            "dev_by_epoch": " ".join(f"{v:.3f}" for v in by_epoch) + (" (windows)" if config["truncation"] == "windows" else ""),
            "wall_s": round(wall_s),
            "peak_rss_gib": round(peak_rss_kib / 2**20, 2), "train_top_blocks": config.get("train_top_blocks"),
            "learning_rate": config["learning_rate"], "run_dir": str(run_dir)}


def run_variant(variant, args, runs_dir) -> dict:
    output = Path(runs_dir) / variant
    argv = command(variant, args.model, args.train, args.dev, output, args.seed)
    if args.rows:
        argv += ["--max-train-examples", str(args.rows)]
    print(f"--- {variant}: {' '.join(argv[1:])}", flush=True)
    log = Path(runs_dir) / f"{variant}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak memory, in KiB on Linux
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{variant} failed (exit {os.waitstatus_to_exitcode(status)}); see {log}")
    return summarize(variant, output, wall, usage.ru_maxrss)


def collect(spec) -> dict:
    """NAME=DIR: a run made by hand under `/usr/bin/time -v`, its report in DIR.log."""
    variant, _, run_dir = spec.partition("=")
    log = Path(run_dir + ".log").read_text(encoding="utf-8", errors="replace")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", log)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    if not (wall and rss):
        raise SystemExit(f"{run_dir}.log has no GNU time -v report (wall clock and maximum resident set size)")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return summarize(variant, run_dir, seconds, int(rss.group(1)))


def first_rows(path, count, destination) -> Path:
    """The header and first `count` rows of a CSV (quoted multi-line fields kept whole)."""
    with open(path, newline="", encoding="utf-8") as f, open(destination, "w", newline="", encoding="utf-8") as out:
        reader = csv.reader(f)
        writer = csv.writer(out)
        writer.writerow(next(reader))
        for index, row in enumerate(reader):
            if index >= count:
                break
            writer.writerow(row)
    return destination


def main(argv=None) -> int:
    import ptft_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "imdb", help="folder with train.csv and dev.csv")
    parser.add_argument("--model", default=None, help="checkpoint (default: the offline all-MiniLM-L6-v2)")
    parser.add_argument("--variants", default="default,head,tail,windows,last_block",
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rows", type=int, default=None, help="only the first N training rows (a quick check)")
    parser.add_argument("--dev-rows", type=int, default=None, help="only the first N dev reviews (a quick check)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the run directories here (default: a temp dir)")
    parser.add_argument("--collect", action="append", default=[], metavar="NAME=DIR",
                        help="report a run made by hand under /usr/bin/time -v instead of running it")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "imdb_cli_runs.json")
    args = parser.parse_args(argv)
    args.model = args.model or str(ptft_keras.default_checkpoint_path())
    args.train, args.dev = args.data / "train.csv", args.data / "dev.csv"

    rows = [collect(spec) for spec in args.collect]
    variants = [] if args.collect else [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if variants:
        for path in (args.train, args.dev):
            if not path.is_file():
                parser.error(f"{path} not found (pass --data FOLDER with train.csv and dev.csv)")
        with open(args.train, newline="", encoding="utf-8") as f:
            print(f"{sum(1 for _ in csv.DictReader(f))} training reviews in {args.train}", flush=True)
    with tempfile.TemporaryDirectory(prefix="imdb-cli-") as scratch:
        runs_dir = args.runs_dir or Path(scratch)
        runs_dir.mkdir(parents=True, exist_ok=True)
        if args.dev_rows and variants:
            args.dev = first_rows(args.dev, args.dev_rows, Path(scratch) / "dev.csv")
        rows += [run_variant(variant, args, runs_dir) for variant in variants]
    print_table(rows, COLUMNS)
    write_json(args.output, {"rows": rows, "rows_limit": args.rows, "dev_rows_limit": args.dev_rows, "seed": args.seed,
                             "model": args.model})
    return 0


if __name__ == "__main__":
    sys.exit(main())
