"""Distillation on SST-2 (issue 17): students against their teacher and against themselves trained on labels alone.

One run, in this order (each step appends to the JSON, so a run cut short by `--deadline-minutes` keeps
what finished):

1. Teacher: `ptft finetune` of the offline default checkpoint (all-MiniLM-L6-v2) on the first
   `--train-rows` SST-2 training rows (default recipe, `--teacher-epochs`), validated on all 872 dev rows.
2. Transfer set: those rows plus the next `--unlabelled-rows` training sentences as unlabelled text (a
   plain text file, labels dropped), labelled once by the teacher (logits cached, shared by all students).
3. Per student (`--students`): `ptft distill` (defaults: KL at temperature 2, alpha 0.5, 3 epochs), and the
   same student (same initial weights, same recipe) on the labelled rows alone (`--alpha 1`, no unlabelled
   text), trained for the same number of optimizer steps (more epochs over its smaller set, the best dev
   epoch kept) so that distillation is not credited with extra training.
   With `--augment 0,4` each student is also distilled with N augmented copies of every transfer-set text
   (`ptft distill --augment N`: token masking, n-gram sampling), every N for the same number of optimizer
   steps as the largest (fewer epochs over a larger set; the copies are counted before training), the
   teacher labelling each copy once (cached per copy, so larger N reuse the smaller N's copies).
4. Each model directory is exported with `ptft export`, and the reloaded SavedModel's `serving_default`
   (raw strings in) is timed: batch-64 examples/s over dev sentences in file order and batch-1 latency
   (p50, ms) over single dev sentences; the systems take turns, so load from other processes falls on all.

    python benchmarks/distillation.py                                    # the issue's setting (hours on 2 CPUs)
    python benchmarks/distillation.py --teacher-epochs 1 --unlabelled-rows 8000 --students tiny,teacher:2@1 \
        --deadline-minutes 24                                            # results/distillation.json (33 min)
    python benchmarks/distillation.py --train-rows 500 --unlabelled-rows 500 --students tiny \\
        --teacher-epochs 1 --output /tmp/distill.json                     # a quick look
    python benchmarks/distillation.py --teacher runs/teacher --train-rows 3000 --unlabelled-rows 0 \\
        --students tiny,bilstm --augment 0,4 --epochs 2 --skip-labels-alone --skip-serving \\
        --output benchmarks/results/distillation_augment.json            # augmentation against none

Writes `benchmarks/results/distillation.json`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, SHARED, print_table, read_tsv, write_json  # noqa: E402

AUGMENT_COLUMNS = ["model", "augment", "transfer rows", "epochs", "steps", "dev accuracy", "best epoch", "train s"]
COLUMNS = ["model", "dev accuracy", "labels alone", "gain", "parameters", "batch-64 ex/s", "speed-up",
           "batch-1 p50 ms", "train s"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "sst2"))
    parser.add_argument("--train-rows", type=int, default=8000)
    parser.add_argument("--unlabelled-rows", type=int, default=None, help="default: all remaining train sentences")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="distillation epochs over the transfer set")
    parser.add_argument("--students", default="tiny,teacher:2",
                        help="comma-separated --student values; NAME@N: N distillation epochs for that one")
    parser.add_argument("--max-labels-alone-epochs", type=int, default=12)
    parser.add_argument("--teacher", default=None, help="reuse this teacher model directory (no fine-tuning)")
    parser.add_argument("--augment", default="0", help="comma-separated --augment values, each run per student for "
                        "the optimizer steps of the largest")
    parser.add_argument("--seed", type=int, default=0, help="the students' --seed (init, shuffling, augmentation)")
    parser.add_argument("--early-stopping-patience", type=int, default=2, help="for the students (0: run all epochs)")
    parser.add_argument("--skip-labels-alone", action="store_true", help="no labels-alone run per student")
    parser.add_argument("--skip-serving", action="store_true", help="no export and serving timings")
    parser.add_argument("--serving-batches", type=int, default=6, help="batch-64 requests per timing round")
    parser.add_argument("--latency-requests", type=int, default=40, help="batch-1 requests per timing round")
    parser.add_argument("--deadline-minutes", type=float, default=None,
                        help="start no new student after this many minutes (what finished is reported)")
    parser.add_argument("--workdir", default=None, help="keep the model directories here (default: a temp dir)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "distillation.json"))
    return parser.parse_args(argv)


def transfer_files(data: Path, work: Path, train_rows: int, unlabelled_rows: int | None) -> dict:
    """The labelled rows (the first `train_rows` of train.tsv, as `--max-train-examples` takes them) and the
    next sentences as a plain text file without labels."""
    texts, _ = read_tsv(data / "train.tsv")
    rest = texts[train_rows:]
    if unlabelled_rows is not None:
        rest = rest[:unlabelled_rows]
    path = work / "unlabelled.txt"
    path.write_text("\n".join(rest) + "\n", encoding="utf-8")
    transfer = texts[:train_rows] + [text for text in rest if text.strip()]
    return {"unlabelled": path if rest else None, "unlabelled_rows": len(rest), "transfer_texts": transfer}


def augmented_rows(texts, copies: int, seed: int) -> int:
    """How many augmented copies `ptft distill --augment copies --seed seed` adds to these transfer-set texts."""
    from ptft_keras.data.augmentation import Augmentation, augment

    return len(augment(texts, augmentation=Augmentation(copies=copies, seed=seed))) if copies else 0


def train_seconds(result) -> float:
    return round(result.report.get("timing", {}).get("train", float("nan")), 1)


def serving_signature(model_dir: Path, export_dir: Path):
    import tensorflow as tf

    from ptft_keras.jobs.export import ExportConfig, run

    run(ExportConfig(model=str(model_dir), output=str(export_dir)))
    version = max((p for p in export_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    signature = tf.saved_model.load(str(version)).signatures["serving_default"]
    return lambda texts: signature(text=tf.constant(texts))


def time_serving(signatures: dict, dev_texts, *, batches: int, requests: int, rounds: int = 2) -> dict:
    """`{name: {"throughput": examples/s, "latency_ms": p50}}`, the systems taking turns round by round."""
    import numpy as np

    batch_64 = [dev_texts[i * 64:(i + 1) * 64] for i in range(batches)]
    singles = [[t] for t in dev_texts[:requests]]
    for run in signatures.values():  # warm up: trace the widths once
        for batch in batch_64[:2] + singles[:5]:
            run(batch)
    seconds = {name: [] for name in signatures}
    latencies = {name: [] for name in signatures}
    for _ in range(rounds):
        for name, run in signatures.items():
            start = time.perf_counter()
            for batch in batch_64:
                run(batch)
            seconds[name].append(time.perf_counter() - start)
            for single in singles:
                start = time.perf_counter()
                run(single)
                latencies[name].append(time.perf_counter() - start)
    rows = sum(len(b) for b in batch_64)
    return {name: {"throughput": round(rows / min(seconds[name]), 1),
                   "latency_ms": round(1000 * float(np.percentile(latencies[name], 50)), 2)} for name in signatures}


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    data = Path(args.data)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="distill_bench_"))
    work.mkdir(parents=True, exist_ok=True)

    import keras

    import ptft_keras as ptft
    from ptft_keras.jobs.distill import DistillConfig, distill
    from ptft_keras.jobs.finetune import finetune

    files = transfer_files(data, work, args.train_rows, args.unlabelled_rows)
    common = dict(train=str(data / "train.tsv"), validation=str(data / "dev.tsv"), text_column="sentence",
                  label_column="label", max_train_examples=args.train_rows, verbose=2, overwrite=True)
    payload = {"settings": {**vars(args), "unlabelled_rows": files["unlabelled_rows"],
                            "teacher_checkpoint": str(ptft.default_checkpoint_path())}, "models": {}, "log": []}

    def note(what):
        line = f"[{(time.perf_counter() - start) / 60:.1f} min] {what}"
        print(line, flush=True)
        payload["log"].append(line)
        write_json(args.output, payload)

    if args.teacher:
        import json

        teacher_dir = Path(args.teacher)
        metrics = json.loads((teacher_dir / "metrics.json").read_text(encoding="utf-8"))
        payload["models"]["teacher"] = {"dev accuracy": metrics["metrics"]["accuracy"], "reused": str(teacher_dir)}
        note(f"teacher {teacher_dir}: dev accuracy {metrics['metrics']['accuracy']:.4f}")
    else:
        teacher = finetune(model=str(ptft.default_checkpoint_path()), output=str(work / "teacher"),
                           epochs=args.teacher_epochs, **common)
        payload["models"]["teacher"] = {"dev accuracy": teacher.report["metrics"]["accuracy"],
                                        "parameters": teacher.model.count_params(), "train s": train_seconds(teacher)}
        note(f"teacher: dev accuracy {teacher.report['metrics']['accuracy']:.4f}")
        teacher_dir = work / "teacher"
        del teacher
        keras.backend.clear_session()
    cache = work / "teacher_logits"
    augments = [int(n) for n in str(args.augment).split(",") if n.strip()]
    seed = args.seed
    transfer = len(files["transfer_texts"])
    rows = {n: transfer + augmented_rows(files["transfer_texts"], n, seed) for n in augments}
    largest = max(rows.values())

    for spec in [s for s in args.students.split(",") if s]:
        student, _, epochs = spec.partition("@")
        epochs = int(epochs or args.epochs)
        if args.deadline_minutes and time.perf_counter() - start > args.deadline_minutes * 60:
            note(f"{student}: not started (deadline of {args.deadline_minutes} min passed)")
            continue
        base = student.replace(":", "")
        unlabelled = None if files["unlabelled"] is None else str(files["unlabelled"])
        for n in augments:
            name = base if n == 0 else f"{base}+augment{n}"
            # the same optimizer steps for every N: fewer epochs over a larger set
            n_epochs = max(1, round(epochs * largest / rows[n]))
            run = distill(DistillConfig(teacher=str(teacher_dir), student=student, output=str(work / name),
                                        unlabelled=unlabelled, epochs=n_epochs, teacher_cache=str(cache), augment=n,
                                        seed=seed, early_stopping_patience=args.early_stopping_patience, **common))
            steps = run.report["steps"]["step"][-1] if run.report["steps"]["step"] else None
            history = run.history.get("val_accuracy", [])
            entry = {"dev accuracy": run.report["metrics"]["accuracy"], "parameters": run.model.count_params(),
                     "train s": train_seconds(run), "epochs": n_epochs, "epochs run": len(run.history.get("loss", [])),
                     "steps": steps, "augment": n, "transfer rows": rows[n],
                     "best epoch": 1 + history.index(max(history)) if history else None,
                     "dev accuracy per epoch": [round(v, 4) for v in history],
                     "teacher dev accuracy (same rows)": run.report["teacher"]["metrics"]["accuracy"]}
            payload["models"][name] = entry
            note(f"{name} distilled ({rows[n]} transfer rows, {n_epochs} epochs): dev accuracy "
                 f"{entry['dev accuracy']:.4f}")
            del run
            keras.backend.clear_session()
        if args.skip_labels_alone:
            continue
        name, entry = base, payload["models"].get(base)
        if entry is None:
            continue
        same_steps = round(entry["epochs"] * transfer / args.train_rows)
        alone_epochs = min(args.max_labels_alone_epochs, max(entry["epochs"], same_steps))
        alone = distill(DistillConfig(teacher=str(teacher_dir), student=student, output=str(work / f"{name}_labels"),
                                      alpha=1.0, epochs=alone_epochs, teacher_cache=str(cache), **common))
        entry.update({"labels alone": alone.report["metrics"]["accuracy"], "labels alone epochs": alone_epochs,
                      "labels alone epochs run": len(alone.history.get("loss", [])),
                      "labels alone train s": train_seconds(alone)})
        entry["gain"] = round(entry["dev accuracy"] - entry["labels alone"], 4)
        note(f"{student} on labels alone ({alone_epochs} epochs): dev accuracy {entry['labels alone']:.4f}")
        del alone
        keras.backend.clear_session()

    if args.skip_serving:
        payload["load_average"] = os.getloadavg()
        payload["minutes"] = round((time.perf_counter() - start) / 60, 1)
        print_table([{"model": n, **m} for n, m in payload["models"].items() if "augment" in m], AUGMENT_COLUMNS)
        write_json(args.output, payload)
        return
    dev_texts, _ = read_tsv(data / "dev.tsv")
    names = list(payload["models"])
    signatures = {n: serving_signature(work / n, work / "exports" / n) for n in names}
    timings = time_serving(signatures, dev_texts, batches=args.serving_batches, requests=args.latency_requests)
    for n in names:
        entry = payload["models"][n]
        entry["batch-64 ex/s"], entry["batch-1 p50 ms"] = timings[n]["throughput"], timings[n]["latency_ms"]
        entry["speed-up"] = round(timings[n]["throughput"] / timings["teacher"]["throughput"], 2)
    payload["load_average"] = os.getloadavg()
    payload["minutes"] = round((time.perf_counter() - start) / 60, 1)
    rows = [{"model": n, **payload["models"][n]} for n in names]
    print_table(rows, COLUMNS)
    write_json(args.output, payload)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
