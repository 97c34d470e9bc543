"""Serving latency and throughput of an exported classifier: the ptft_keras SavedModel against PyTorch.

A `SequenceClassifier` on the offline default checkpoint (all-MiniLM-L6-v2: 6 layers, hidden 384; the
two-class head is random, which does not change the cost) is exported at sequence length 128 (SST-2-like)
and 512 (IMDb-like), head truncation, and served from the reloaded SavedModel's ``serving_default``
signature (raw strings in: tokenization is timed). Systems, all in this one process, same threads:

* ``ours``: `export_model`'s default, each request padded to its longest text rounded up to a multiple of 8.
* ``ours_exact``: ``pad_to_multiple_of=1``, padded to exactly the longest text.
* ``before``: ``padding="fixed"``, every request padded to the sequence length (the export before issue 22).
* ``keras_kernels``: ``ours`` exported with Keras' own attention einsum and ``tf.nn.gelu`` (erfc) in place of
  `ptft_keras.models.attention` and the erf GELU (`models.activations.gelu_erf`): the same export before those
  two kernel changes, to measure them.
* ``pytorch``: the same weights written by `backbone.save_pretrained` and loaded as transformers'
  `BertForSequenceClassification` (the head copied in), `BertTokenizerFast`, dynamic padding
  (``padding=True, truncation=True, max_length=L``), `torch.inference_mode`; tokenization is timed too.
  It runs in a child process (TensorFlow's thread pools and torch's OpenMP threads in one process slowed
  torch down), waiting for its turn while the others run.

Rows: batch-1 latency (p50/p95 ms) of a 7-word and a 35-word sentence, of SST-2 dev sentences one request
each (widths change from request to request, as in real traffic), and of a long IMDb dev review at 512;
batch-64 throughput (examples/s) on SST-2 dev sentences (128) and IMDb dev reviews (512), in file order.
The systems take turns (each row runs every system, twice round), so load from other processes falls on
all of them alike; the machine's load average before and after is recorded. The logits of ``ours``, ``before`` and ``pytorch`` are compared on the first batch.

    python benchmarks/serving_latency.py
    python benchmarks/serving_latency.py --repeats 6 --sentences 8 --batches 1 --output /tmp/serving.json  # quick

Writes `benchmarks/results/serving_latency.json`.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, SHARED, print_table, read_tsv, write_json  # noqa: E402

SHORT = "The waiter was charming and really kind."  # 7 words
LONG = ("The film starts slowly and the first hour drags, but the second half is gripping, the actors are superb, "
        "the music fits every scene, and I left the cinema thinking about it for days afterwards.")  # 35 words
SYSTEMS = ("ours", "ours_exact", "before", "keras_kernels", "pytorch")
EXPORTS = {"ours": {}, "ours_exact": {"pad_to_multiple_of": 1}, "before": {"padding": "fixed"}, "keras_kernels": {}}
LABELS = ["negative", "positive"]


def read_imdb_reviews(path, limit=None):
    with open(path, encoding="utf-8", newline="") as f:
        return [row["review"] for row in csv.DictReader(f)][:limit]


def build_classifier(seed):
    import keras

    import ptft_keras as ptft
    from ptft_keras.tasks.sequence_classifier import SequenceClassifier

    keras.utils.set_random_seed(seed)
    path = ptft.default_checkpoint_path()
    tokenizer = ptft.Tokenizer.from_pretrained(path)
    # pooling="pooled": the PyTorch twin is BertForSequenceClassification, which reads BERT's pooler.
    return SequenceClassifier(ptft.Backbone.from_pretrained(path), label_names=LABELS, pooling="pooled"), tokenizer


def ours_runners(model, tokenizer, sequence_length, directory):
    """System name -> texts -> logits, through the reloaded SavedModel of each export setting."""
    import tensorflow as tf

    import ptft_keras as ptft

    runners = {}
    for name, options in EXPORTS.items():
        with keras_kernels(model) if name == "keras_kernels" else contextlib.nullcontext():
            version = ptft.export_model(model, tokenizer, Path(directory) / f"{name}_{sequence_length}",
                                        sequence_length=sequence_length, **options)
        signature = tf.saved_model.load(str(version)).signatures["serving_default"]
        runners[name] = lambda texts, signature=signature: signature(text=tf.constant(texts))["logits"].numpy()
    return runners


@contextlib.contextmanager
def keras_kernels(model):
    """Within: `model` computes attention with Keras' einsum path and GELU with ``tf.nn.gelu`` (erfc)."""
    import keras

    layers = model.backbone.transformer_layers
    saved = [(layer._self_attention_layer.__dict__.pop("_compute_attention"),
              layer._feedforward_intermediate_dense.activation) for layer in layers]
    try:
        for layer in layers:
            layer._feedforward_intermediate_dense.activation = keras.activations.gelu  # approximate=False
        yield model
    finally:
        for layer, (attention, activation) in zip(layers, saved):
            layer._self_attention_layer._compute_attention = attention
            layer._feedforward_intermediate_dense.activation = activation


def pytorch_classifier(checkpoint, kernel, bias, threads):
    """`BertForSequenceClassification` on the HF checkpoint, with the Keras head's weights, and its tokenizer."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast
    from transformers.utils import logging

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    logging.set_verbosity_error()  # the classifier is "missing" from the checkpoint: it is copied in below
    model = BertForSequenceClassification.from_pretrained(str(checkpoint), num_labels=len(LABELS)).eval()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(kernel.T.copy()))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    return model, BertTokenizerFast.from_pretrained(str(checkpoint))


def pytorch_worker(connection, checkpoint, kernel, bias, threads):
    """Child process: answers ``(sequence_length, requests)`` (lists of texts) with `timed_calls`' ``(logits of
    the last request, times of each call)``; ``None`` ends it."""
    import torch

    model, tokenizer = pytorch_classifier(checkpoint, kernel, bias, threads)

    def run(texts):
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=sequence_length, return_tensors="pt")
        return model(**encoded).logits.numpy()

    while (request := connection.recv()) is not None:
        sequence_length, requests = request
        with torch.inference_mode():
            connection.send(timed_calls(run, requests))


class PytorchProcess:
    """The transformers twin of `model` in a child process, idle (blocked on a pipe) while the others run."""

    def __init__(self, model, tokenizer, directory, threads):
        import multiprocessing

        checkpoint = model.backbone.save_pretrained(Path(directory) / "hf", tokenizer=tokenizer)
        kernel, bias = model.head.logits.get_weights()
        self.connection, child = multiprocessing.get_context("spawn").Pipe()
        self.process = multiprocessing.get_context("spawn").Process(
            target=pytorch_worker, args=(child, checkpoint, kernel, bias, threads), daemon=True)
        self.process.start()

    def calls(self, sequence_length, requests):
        """Serve `requests` (lists of texts) at max_length `sequence_length`: (last logits, times of each)."""
        self.connection.send((sequence_length, requests))
        return self.connection.recv()

    def close(self):
        self.connection.send(None)
        self.process.join(timeout=60)


def timed_calls(run, requests):
    """``(result of the last call, [(wall seconds, CPU seconds of this process)] of each call run(texts))``
    for the requests (lists of texts). The CPU time is the work the call did, whatever else the machine ran."""
    times, result = [], None
    for texts in requests:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run(texts)
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    return result, times


def take_turns(systems, requests, *, warmup, rounds=2):
    """System name -> (wall, CPU) seconds of each call. Each system is a function ``requests -> times of each``;
    every system serves `warmup` first (the first call of a shape pays one-time costs), then all `requests`,
    system after system, `rounds` times round."""
    times = {name: [] for name in systems}
    for serve in systems.values():
        serve(warmup)
    for _ in range(rounds):
        for name, serve in systems.items():
            times[name] += serve(requests)
    return times


def latency_row(systems, requests, *, rounds=2):
    """Batch-1 latency of each system over `requests`: p50/p95 wall-clock ms, p50 CPU ms."""
    result = {}
    for name, times in take_turns(systems, requests, warmup=requests[:1], rounds=rounds).items():
        wall, cpu = zip(*times)
        result[name] = {"p50_ms": 1e3 * _percentile(wall, 50), "p95_ms": 1e3 * _percentile(wall, 95),
                        "cpu_p50_ms": 1e3 * _percentile(cpu, 50), "calls": len(times)}
    return result


def throughput_row(systems, texts, *, batch_size, batches, rounds=2):
    """Examples per wall-clock second (and per CPU second) of each system on the first `batches` batches of
    `texts`, in file order (a warm-up batch of 8 texts first)."""
    chunks = [texts[i:i + batch_size] for i in range(0, batch_size * batches, batch_size)]
    examples = rounds * sum(len(c) for c in chunks)
    result = {}
    for name, times in take_turns(systems, chunks, warmup=[texts[:8]], rounds=rounds).items():
        wall, cpu = zip(*times)
        result[name] = {"examples_per_s": examples / sum(wall), "examples_per_cpu_s": examples / sum(cpu),
                        "examples": examples}
    return result


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _max_diff(a, b):
    return float(abs(a - b).max())


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_sequence_length(model, tokenizer, pytorch, sequence_length, args, directory, data, report):
    """Measure the rows of one sequence length, handing each to `report(row=...)` when done, after checks
    that the systems compute the same logits (`report(checks=...)`)."""
    runners = ours_runners(model, tokenizer, sequence_length, directory)
    systems = {name: lambda requests, run=run: timed_calls(run, requests)[1] for name, run in runners.items()}
    systems["pytorch"] = lambda requests: pytorch.calls(sequence_length, requests)[1]
    batch_texts = data["imdb"] if sequence_length > 128 else data["sst2"]
    first = batch_texts[:args.batch_size]
    logits = {name: run(first) for name, run in runners.items()}
    logits["pytorch"] = pytorch.calls(sequence_length, [first])[0]
    checks = {f"max_abs_logit_diff_{name}_vs_before": _max_diff(logits[name], logits["before"])
              for name in ("ours", "ours_exact", "keras_kernels", "pytorch")}
    checks["same_predictions_ours_pytorch"] = bool((logits["ours"].argmax(-1) == logits["pytorch"].argmax(-1)).all())
    report(checks={str(sequence_length): checks})

    tokens = {key: min(sequence_length, len(tokenizer.tokenize([text]).to_list()[0]) + 2)
              for key, text in (("short", SHORT), ("long", LONG), ("review", data["review"]))}
    cases = [("7-word sentence", tokens["short"], [[SHORT]] * args.repeats),
             ("35-word sentence", tokens["long"], [[LONG]] * args.repeats)]
    if sequence_length > 128:
        cases.append(("IMDb dev review", tokens["review"], [[data["review"]]] * max(2, args.repeats // 3)))
    else:
        cases.append(("SST-2 dev, one request each", None, [[t] for t in data["sst2"][:args.sentences]]))
    for case, length, requests in cases:
        print(f"[{sequence_length}] {case} ...", flush=True)
        report(row={"sequence_length": sequence_length, "case": case, "batch": 1, "tokens": length,
                    "systems": latency_row(systems, requests)})
    case = "IMDb dev reviews" if sequence_length > 128 else "SST-2 dev sentences"
    print(f"[{sequence_length}] {case}, batch {args.batch_size} ...", flush=True)
    if sequence_length > 128:  # a batch of reviews takes half a minute: one round, and ours_exact has ours' width
        systems.pop("ours_exact")
    result = throughput_row(systems, batch_texts, batch_size=args.batch_size, batches=args.batches,
                            rounds=1 if sequence_length > 128 else 2)
    report(row={"sequence_length": sequence_length, "case": case, "batch": args.batch_size, "systems": result})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequence-lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 requests per system and round (x2 rounds)")
    parser.add_argument("--sentences", type=int, default=60, help="SST-2 dev sentences sent one by one")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=3, help="timed batches of SST-2 per system and round")
    parser.add_argument("--imdb-batches", type=int, default=1, help="timed batches of IMDb reviews per system")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of TensorFlow and torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "serving_latency.json"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    sst2, _ = read_tsv(SHARED / "sst2" / "dev.tsv")
    imdb = read_imdb_reviews(SHARED / "imdb" / "dev.csv")
    review = next(r for r in imdb if len(r.split()) >= 450)  # fills all 512 tokens
    data = {"sst2": sst2, "imdb": imdb, "review": review}
    start = time.perf_counter()
    result = {
        "command": "python benchmarks/serving_latency.py " + " ".join(sys.argv[1:]),
        "cpu": _cpu_model(),
        "versions": {name: metadata.version(name) for name in ("tensorflow", "keras", "keras-hub", "torch", "transformers")},
        "threads": {"intra_op": args.threads, "inter_op": 1},
        "note": "shared 2-core machine: other engineers' jobs ran at the same time (load_average: 1, 5 and 15 "
                "minute averages when the row ended); the systems take turns",
        "load_average_before": os.getloadavg(), "complete": False, "checks": {}, "rows": [],
    }

    def report(row=None, checks=None):
        """Record a finished row (or checks) and rewrite the JSON, so an interrupted run keeps what it measured."""
        if row is not None:
            result["rows"].append({**row, "load_average": os.getloadavg()})
        result["checks"].update(checks or {})
        result["seconds"] = time.perf_counter() - start
        write_json(args.output, result)

    model, tokenizer = build_classifier(args.seed)
    with tempfile.TemporaryDirectory(prefix="serving-latency-") as directory:
        pytorch = PytorchProcess(model, tokenizer, directory, args.threads)
        for length in args.sequence_lengths:
            batches = args.imdb_batches if length > 128 else args.batches
            run_sequence_length(model, tokenizer, pytorch, length,
                                argparse.Namespace(**{**vars(args), "batches": batches}), directory, data, report)
        pytorch.close()
    result["complete"] = True
    _print(result["rows"])
    report()


def _print(rows):
    latency = []
    for row in (r for r in rows if r["batch"] == 1):
        s = row["systems"]
        latency.append({
            "L": row["sequence_length"], "request (batch 1)": row["case"], "tokens": row["tokens"] or "varies",
            **{f"{n} p50": s[n]["p50_ms"] for n in SYSTEMS}, "ours p95": s["ours"]["p95_ms"],
            "pytorch p95": s["pytorch"]["p95_ms"], "pytorch/ours": s["pytorch"]["p50_ms"] / s["ours"]["p50_ms"],
            "CPU ms ours": s["ours"]["cpu_p50_ms"], "CPU ms pytorch": s["pytorch"]["cpu_p50_ms"],
        })
    print("\nbatch-1 latency, wall-clock ms (p50 unless marked; CPU ms: p50 CPU time of the serving process)")
    print_table(latency, list(latency[0]))
    throughput = []
    for row in (r for r in rows if r["batch"] > 1):
        s = row["systems"]
        throughput.append({"L": row["sequence_length"], "texts": f"{row['case']}, batch {row['batch']}",
                           **{n: s[n]["examples_per_s"] if n in s else "-" for n in SYSTEMS},
                           "ours/pytorch": s["ours"]["examples_per_s"] / s["pytorch"]["examples_per_s"],
                           "ours per CPU s": s["ours"]["examples_per_cpu_s"],
                           "pytorch per CPU s": s["pytorch"]["examples_per_cpu_s"]})
    print("\nthroughput, examples per wall-clock second (and per CPU second of the serving process)")
    print_table(throughput, list(throughput[0]))
    for length in sorted({r["sequence_length"] for r in rows}):
        by_case = {r["case"]: r["systems"]["ours"]["p50_ms"] for r in rows
                   if r["sequence_length"] == length and r["batch"] == 1}
        print(f"L={length}: 35-word / 7-word latency (ours): "
              f"{by_case['35-word sentence'] / by_case['7-word sentence']:.2f}x")


if __name__ == "__main__":
    main()
