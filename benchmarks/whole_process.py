"""What a user waits for: the whole `ptft finetune` process against a keras-hub script doing the same job.

Both fine-tune all-MiniLM-L6-v2 (the offline default checkpoint) on the first `--rows` SST-2 training
sentences for `--epochs` epoch(s) at batch 32, AdamW 1e-4 with weight decay 0.01, score all 872 dev
sentences after every epoch (once each) and save the model. Each runs as its own process, timed from launch to exit (interpreter,
imports, reading, tokenizing, building, training, evaluating, saving): one after the other, same machine.

* ``ptft``: ``ptft finetune --train train.tsv --validation dev.tsv --max-train-examples N --epochs E`` with
  everything else at its default; its own breakdown (start-up, data, build, train, evaluate, save) comes
  from the model directory's metrics.json;
* ``ptft_bf16``: the same with ``--precision mixed_bfloat16`` (bfloat16 matmuls: AMX/AVX512-BF16 on
  recent x86 CPUs);
* ``keras_hub``: the script a keras-hub user writes (`BertTextClassifier.from_preset` with its own
  preprocessor at sequence length 64, `fit` with `validation_data`, `save`), printed in full in the JSON.

    python benchmarks/whole_process.py
    python benchmarks/whole_process.py --runners ptft,keras_hub --rows 4000 --epochs 1
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

from common import SHARED, print_table, write_json  # noqa: E402  (script dir on path)

KERAS_HUB_SCRIPT = '''
import csv, json, sys, time
import numpy as np
import keras, keras_hub

checkpoint, train_path, dev_path, rows, epochs, output = sys.argv[1:7]

def read(path, limit=None):
    with open(path, encoding="utf-8", newline="") as f:
        data = [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\\t", quoting=csv.QUOTE_NONE)]
    data = data[:limit] if limit else data
    return np.array([t for t, _ in data]), np.array([y for _, y in data])

x, y = read(train_path, int(rows))
dev_x, dev_y = read(dev_path)
keras.utils.set_random_seed(0)
model = keras_hub.models.BertTextClassifier.from_preset(checkpoint, num_classes=2)
model.preprocessor.sequence_length = 64
model.compile(optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
start = time.perf_counter()
history = model.fit(x=x, y=y, batch_size=32, epochs=int(epochs), validation_data=(dev_x, dev_y), verbose=2)
train = time.perf_counter() - start
model.save(output + "/model.keras")
print(json.dumps({"dev_accuracy": history.history["val_accuracy"][-1], "train_seconds": train}))
'''


def timed(cmd, env=None) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{cmd[0:3]} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return seconds, done.stdout


def ptft(args, work: Path, *extra) -> dict:
    output = work / f"ptft{'_'.join(extra)}"
    cmd = [str(Path(sys.executable).parent / "ptft"), "finetune", "--train", str(SHARED / "sst2" / "train.tsv"),
           "--validation", str(SHARED / "sst2" / "dev.tsv"), "--text-column", "sentence",
           "--max-train-examples", str(args.rows), "--epochs", str(args.epochs), "--output", str(output),
           "--verbose", "2", *extra]
    seconds, _ = timed(cmd)
    report = json.loads((output / "metrics.json").read_text())
    return {"wall_seconds": round(seconds, 1), "dev_accuracy": round(report["metrics"]["accuracy"], 4),
            "breakdown": report.get("timing"), "command": " ".join(cmd[1:])}


def keras_hub(args, work: Path) -> dict:
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    script = work / "keras_hub_finetune.py"
    script.write_text(KERAS_HUB_SCRIPT)
    output = work / "keras_hub"
    output.mkdir()
    cmd = [sys.executable, str(script), str(default_checkpoint_path()), str(SHARED / "sst2" / "train.tsv"),
           str(SHARED / "sst2" / "dev.tsv"), str(args.rows), str(args.epochs), str(output)]
    seconds, out = timed(cmd, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    result = json.loads(out.strip().splitlines()[-1])
    return {"wall_seconds": round(seconds, 1), "dev_accuracy": round(result["dev_accuracy"], 4),
            "breakdown": {"train": round(result["train_seconds"], 1)}, "script": KERAS_HUB_SCRIPT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runners", default="ptft,ptft_bf16,keras_hub")
    parser.add_argument("--output", default="benchmarks/results/whole_process.json")
    args = parser.parse_args()
    runners = {"ptft": lambda w: ptft(args, w), "ptft_bf16": lambda w: ptft(args, w, "--precision", "mixed_bfloat16"),
               "keras_hub": lambda w: keras_hub(args, w)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="ptft-whole-") as tmp:
        for name in args.runners.split(","):
            print(f"== {name}", flush=True)
            rows.append({"runner": name, **runners[name](Path(tmp))})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "script"}), flush=True)
    base = next((r["wall_seconds"] for r in rows if r["runner"] == "keras_hub"), None)
    for row in rows:
        row["speedup_vs_keras_hub"] = round(base / row["wall_seconds"], 2) if base else None
    write_json(args.output, {"rows_trained": args.rows, "epochs": args.epochs, "runs": rows})
    print_table(rows, ["runner", "wall_seconds", "dev_accuracy", "speedup_vs_keras_hub"])
    for row in rows:
        print(row["runner"], row.get("breakdown"))


if __name__ == "__main__":
    main()
