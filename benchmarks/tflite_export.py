"""TFLite beside the SavedModel: size, SST-2 dev accuracy and batch-1 latency of each export of a model directory.

For every model directory given (e.g. the students and teacher of benchmarks/distillation.py), one process
exports the SavedModel (`ptft export`) and `--format tflite` with `--quantization none` and `dynamic`, then
scores the dev sentences with each and times single-sentence requests, the exports taking turns:

    python benchmarks/tflite_export.py --models /tmp/dfull/tiny,/tmp/dfull/bilstm,/tmp/dfull/teacher

The SavedModel is served from raw strings (`serving_default`); TFLite through `TFLiteModel` (the same
tokenization and outputs, the ids fed to the TFLite interpreter with `--threads` threads). Size: the
SavedModel's version directory against `model.tflite` (the tokenizer files beside it add ~0.2 MB to both).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, SHARED, machine, print_table, read_tsv, write_json  # noqa: E402


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="comma-separated fine-tuned model directories")
    parser.add_argument("--dev", default=str(SHARED / "sst2" / "dev.tsv"))
    parser.add_argument("--requests", type=int, default=100, help="single-sentence requests per export per round")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (exports take turns each round)")
    parser.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "tflite_export.json"))
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from ptft_keras.export.tflite import TFLITE_FILE, TFLiteModel
    from ptft_keras.jobs.export import export_finetuned_dir

    texts, labels = read_tsv(args.dev)
    gold = np.array(labels)
    rows, runners = [], []
    with tempfile.TemporaryDirectory(prefix="tflite-bench-") as tmp:
        for model_dir in args.models.split(","):
            name = Path(model_dir).name
            saved = export_finetuned_dir(model_dir, Path(tmp) / f"{name}_saved_model")
            serve = tf.saved_model.load(str(saved)).signatures["serving_default"]

            def saved_predict(batch, serve=serve):
                return serve(text=tf.constant(batch))["label_id"].numpy()

            exports = [("saved_model", saved, folder_bytes(saved), saved_predict)]
            for quantization in ("none", "dynamic"):
                version = export_finetuned_dir(model_dir, Path(tmp) / f"{name}_tflite_{quantization}", format="tflite",
                                               quantization=quantization)
                lite = TFLiteModel(version, threads=args.threads)
                exports.append((f"tflite_{quantization}", version, (version / TFLITE_FILE).stat().st_size,
                                lambda batch, lite=lite: lite.predict(batch)["label_id"]))
            for export, _, size, predict in exports:
                predicted = np.concatenate([predict(texts[i:i + 64]) for i in range(0, len(texts), 64)])
                row = {"model": name, "export": export, "megabytes": round(size / 1e6, 2),
                       "dev_accuracy": round(float((predicted == gold).mean()), 4), "latencies": []}
                rows.append(row)
                runners.append((row, predict))
                print(f"{name} {export}: {row['megabytes']} MB, dev accuracy {row['dev_accuracy']}", flush=True)
        for _ in range(args.rounds):
            for row, predict in runners:
                predict(texts[:3])  # warm
                for text in texts[:args.requests]:
                    start = time.perf_counter()
                    predict([text])
                    row["latencies"].append((time.perf_counter() - start) * 1000)
    for row in rows:
        latencies = sorted(row.pop("latencies"))
        row["batch1_p50_ms"] = round(statistics.median(latencies), 2)
        row["batch1_p90_ms"] = round(latencies[int(0.9 * (len(latencies) - 1))], 2)
    print_table(rows, ["model", "export", "megabytes", "dev_accuracy", "batch1_p50_ms", "batch1_p90_ms"])
    write_json(args.output, {"machine": machine(), "argv": sys.argv, "rows": rows})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
