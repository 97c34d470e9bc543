"""Peak resident memory of fine-tuning at 512 tokens: `ptft finetune` against the transformers (PyTorch) loop.

Both train all-MiniLM-L6-v2 on the first `--rows` IMDb reviews (long: most exceed 512 tokens, so nearly
every batch is full width) for one epoch at `--batch-size`, 512 tokens, then score `--dev-rows` dev reviews.
Each runs as its own process, one after the other; the peak resident set of each process (`wait4`'s
ru_maxrss) is the figure a user's machine must hold.

* ``ptft``: ``ptft finetune --sequence-length 512 --truncation head --batch-size B --epochs 1`` (defaults
  otherwise);
* ``transformers``: `baselines.transformers_classifier` (AutoModelForSequenceClassification, AdamW,
  dynamic padding, max length 512, head truncation), in a fresh interpreter.

    python benchmarks/memory_512.py
    python benchmarks/memory_512.py --rows 96 --batch-size 32 --runners ptft,transformers
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED, print_table, write_json  # noqa: E402  (script dir on path)

TRANSFORMERS_SCRIPT = '''
import csv, json, sys
sys.path.insert(0, sys.argv[1])
import torch  # noqa: F401
from baselines import transformers_classifier

def read(path, limit):
    with open(path, encoding="utf-8", newline="") as f:
        rows = [(r["review"], r["sentiment"]) for r in csv.DictReader(f)][:limit]
    return [t for t, _ in rows], [1 if s == "positive" else 0 for _, s in rows]

checkpoint, train, dev, rows, dev_rows, batch = sys.argv[2:8]
result = transformers_classifier(checkpoint, read(train, int(rows)), read(dev, int(dev_rows)), batch_size=int(batch),
                                 epochs=1, lr=1e-4, padding="dynamic", max_length=512, seed=0)
print(json.dumps(result))
'''


def run_measured(cmd, env=None) -> tuple[float, float, str]:
    """Run `cmd`; returns (wall seconds, peak RSS in MiB of that process, stdout)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode:
        sys.exit(f"{cmd[:3]} failed ({child.returncode}):\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return seconds, usage.ru_maxrss / 1024.0, stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=96)
    parser.add_argument("--dev-rows", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runners", default="ptft,transformers")
    parser.add_argument("--output", default="benchmarks/results/memory_512.json")
    args = parser.parse_args()
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    checkpoint = str(default_checkpoint_path())
    rows = []
    with tempfile.TemporaryDirectory(prefix="ptft-mem-") as tmp:
        work = Path(tmp)
        with open(SHARED / "imdb" / "dev.csv", encoding="utf-8", newline="") as f:
            dev = list(csv.DictReader(f))[: args.dev_rows]
        with open(work / "dev.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(dev[0]))
            writer.writeheader()
            writer.writerows(dev)
        for name in args.runners.split(","):
            print(f"== {name}", flush=True)
            if name == "ptft":
                cmd = [str(Path(sys.executable).parent / "ptft"), "finetune", "--train", str(SHARED / "imdb" / "train.csv"),
                       "--validation", str(work / "dev.csv"), "--text-column", "review", "--label-column", "sentiment",
                       "--max-train-examples", str(args.rows), "--epochs", "1", "--batch-size", str(args.batch_size),
                       "--sequence-length", "512", "--truncation", "head", "--output", str(work / "ptft"), "--verbose", "2"]
                seconds, peak, _ = run_measured(cmd)
                accuracy = json.loads((work / "ptft" / "metrics.json").read_text())["metrics"]["accuracy"]
            else:
                script = work / "transformers_loop.py"
                script.write_text(TRANSFORMERS_SCRIPT)
                cmd = [sys.executable, str(script), str(Path(__file__).resolve().parent), checkpoint,
                       str(SHARED / "imdb" / "train.csv"), str(work / "dev.csv"), str(args.rows), str(args.dev_rows),
                       str(args.batch_size)]
                seconds, peak, out = run_measured(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                accuracy = json.loads(out.strip().splitlines()[-1])["dev_accuracy"]
            rows.append({"runner": name, "peak_rss_gib": round(peak / 1024, 2), "wall_seconds": round(seconds, 1),
                         "dev_accuracy": round(accuracy, 4), "command": " ".join(cmd[1:])})
            print(json.dumps(rows[-1]), flush=True)
            write_json(args.output, {"rows": args.rows, "batch_size": args.batch_size, "sequence_length": 512,
                                     "runs": rows})
    print_table(rows, ["runner", "peak_rss_gib", "wall_seconds", "dev_accuracy"])


if __name__ == "__main__":
    main()
