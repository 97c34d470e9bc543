"""Issue 18's kill test: `kill -9` at random (seeded) moments of `ptft finetune` and `ptft pretrain`, each
followed by the same command, against an unbroken run of that command.

Each kill comes a seeded random fraction (0 to 0.9) of the unbroken run's training time after the run's
first backup appeared, so every kill lands in training whatever the machine's load does to start-up
(a kill before the first backup only restarts from step 0). For every kill it records whether the rerun
resumed (said so), whether it finished, whether a checkpoint was unreadable ("corrupted": the rerun failed on it),
and how far its final metrics and weights are from the unbroken run's (max absolute difference).

The runs are small (a tiny random BERT; 320 SST-2 rows, 2 epochs, a backup every 4 steps for fine-tuning;
a tiny from-scratch model, 40 steps, a backup every 8 steps for pretraining) so that twenty kills take
minutes, not hours; the resume code path is the one a long run takes.

    python benchmarks/kill_resume.py                    # 10 finetune + 10 pretrain kills
    python benchmarks/kill_resume.py --kills 3 --jobs finetune

Writes `benchmarks/results/kill_resume.json`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import SHARED, machine, print_table, read_tsv, write_json  # noqa: E402

COLUMNS = ["job", "kill", "killed_after_s", "training_fraction", "resumed", "finished", "corrupted", "metric_diff", "weight_diff"]


def prepare(folder: Path) -> dict:
    """A tiny random BERT checkpoint with all-MiniLM-L6-v2's vocabulary, the SST-2 slices and a corpus."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from ptft_keras import default_checkpoint_path
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone

    tokenizer = Tokenizer.from_pretrained(default_checkpoint_path())
    backbone = Backbone.from_size(None, model_type="bert", vocabulary_size=tokenizer.vocab_size, num_layers=2,
                                  hidden_dim=64, num_heads=2, intermediate_dim=128, max_sequence_length=128)
    checkpoint = backbone.save_pretrained(folder / "ckpt", tokenizer=tokenizer)
    texts, labels = read_tsv(SHARED / "sst2" / "train.tsv", limit=420)
    rows = list(zip(texts, labels))
    for name, part in (("train.tsv", rows[:320]), ("dev.tsv", rows[320:])):
        (folder / name).write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in part), encoding="utf-8")
    (folder / "corpus.txt").write_text("".join(f"{t}\n" + ("\n" if i % 8 == 7 else "") for i, (t, _) in
                                               enumerate(rows)), encoding="utf-8")
    return {"checkpoint": str(checkpoint), "train": str(folder / "train.tsv"), "dev": str(folder / "dev.tsv"),
            "corpus": str(folder / "corpus.txt")}


def command(job: str, files: dict, output: Path) -> list[str]:
    ptft = [sys.executable, "-m", "ptft_keras.cli"]
    if job == "finetune":
        return [*ptft, "finetune", "--model", files["checkpoint"], "--train", files["train"], "--validation",
                files["dev"], "--text-column", "sentence", "--output", str(output), "--epochs", "2", "--batch-size",
                "16", "--save-every", "4", "--seed", "0", "--verbose", "2"]
    return [*ptft, "pretrain", "--model", "tiny", "--corpus", files["corpus"], "--output", str(output),
            "--max-steps", "40", "--batch-size", "16", "--sequence-length", "32", "--save-every", "8",
            "--eval-every", "40", "--heldout-lines", "20", "--vocab-size", "2000", "--seed", "0"]


def run(cmd, timeout=1800) -> tuple[int, str, float]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def backup_marker(job: str, output: Path) -> Path:
    """The file whose appearance says the run has a first backup to resume from."""
    return output / (".resume/state.json" if job == "finetune" else "backup/checkpoint.json")


def timed_run(job: str, cmd, output: Path, timeout=1800) -> tuple[int, str, float, float]:
    """`run`, also timing when the first backup appeared: `(code, log, seconds, first backup seconds)`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        first = None
        while process.poll() is None:
            if first is None and backup_marker(job, output).exists():
                first = time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                process.kill()
            time.sleep(0.02)
        log.seek(0)
        return process.returncode, log.read(), time.perf_counter() - start, first


def outcome(job: str, output: Path, log: str) -> tuple[dict, list[np.ndarray]]:
    """`(metrics, weights)` of a finished run."""
    if job == "finetune":
        from ptft_keras.jobs.model_dir import load_model_dir

        metrics = json.loads((output / "metrics.json").read_text())["metrics"]
        model = load_model_dir(output)[0]
        return metrics, [np.asarray(w) for w in model.get_weights()]
    from safetensors.numpy import load_file

    last = json.loads([line for line in log.splitlines() if line.startswith("{")][-1])
    tensors = load_file(str(output / "backbone" / "model.safetensors"))
    return {"mlm_loss": last["mlm_loss"]}, [tensors[k] for k in sorted(tensors)]


def max_diff(a, b) -> float:
    if isinstance(a, dict):
        return max((abs(float(a[k]) - float(b[k])) for k in a if isinstance(a[k], (int, float))), default=0.0)
    return max(float(np.max(np.abs(x.astype(np.float64) - y))) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per job (a run that finishes before its kill "
                        "is recorded and another moment drawn)")
    parser.add_argument("--jobs", default="finetune,pretrain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "kill_resume.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = prepare(folder)
        for job in args.jobs.split(","):
            unbroken_dir = folder / f"{job}-unbroken"
            code, log, unbroken_s, first_backup_s = timed_run(job, command(job, files, unbroken_dir), unbroken_dir)
            assert code == 0, log[-3000:]
            reference = outcome(job, unbroken_dir, log)
            training_s = unbroken_s - (first_backup_s or 0.0)
            print(f"{job}: unbroken run {unbroken_s:.0f} s, first backup after {first_backup_s or 0:.0f} s", flush=True)
            kill, landed = -1, 0
            while landed < args.kills and kill < 3 * args.kills:  # a run that ends before its kill is drawn again
                kill += 1
                output = folder / f"{job}-kill-{kill}"
                # Start-up time varies with the machine's load: the kill comes a seeded random fraction of the
                # unbroken run's training time after this run's first backup, so every kill lands in training.
                fraction = rng.uniform(0.0, 0.9)
                process = subprocess.Popen(command(job, files, output), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                began = time.perf_counter()
                while process.poll() is None and not backup_marker(job, output).exists():
                    time.sleep(0.02)
                after = time.perf_counter() - began + fraction * training_s
                try:
                    process.wait(timeout=fraction * training_s)
                    killed = False  # it finished before the kill came
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait()
                    killed = True
                if killed and job == "finetune" and (output / "model.keras").exists() and not (output / ".resume").exists():
                    killed = False  # the kill came after the run had written its model directory
                landed += killed
                if not killed:
                    rows.append({"job": job, "kill": kill, "killed_after_s": None, "resumed": False, "finished": True,
                                 "corrupted": False, "metric_diff": None, "weight_diff": None,
                                 "note": "finished before the kill came"})
                    continue
                code, log, _ = run(command(job, files, output))
                finished = code == 0
                row = {"job": job, "kill": kill, "killed_after_s": round(after, 1) if killed else None,
                       "training_fraction": round(fraction, 3),
                       "resumed": "resum" in log.lower(), "finished": finished,
                       "corrupted": (not finished) and ("backup" in log or "checkpoint" in log.lower()),
                       "metric_diff": None, "weight_diff": None}
                if finished:
                    metrics, weights = outcome(job, output, log)
                    row["metric_diff"], row["weight_diff"] = max_diff(metrics, reference[0]), max_diff(weights,
                                                                                                     reference[1])
                elif not finished:
                    row["error"] = log[-600:]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print_table(rows, COLUMNS)
    killed = [r for r in rows if r["killed_after_s"] is not None]
    summary = {
        "kills": len(killed), "resumed": sum(r["resumed"] for r in killed),
        "finished": sum(r["finished"] for r in killed), "corrupted": sum(r["corrupted"] for r in killed),
        "max_weight_diff": max((r["weight_diff"] for r in killed if r["weight_diff"] is not None), default=None),
        "max_metric_diff": max((r["metric_diff"] for r in killed if r["metric_diff"] is not None), default=None),
    }
    print(json.dumps(summary))
    write_json(args.output, {"command": " ".join(sys.argv), "machine": machine(), "summary": summary, "runs": rows})


if __name__ == "__main__":
    main()
