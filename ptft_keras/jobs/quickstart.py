"""`ptft quickstart` (the whole story on the offline defaults) and `ptft embed` (sentence embeddings).

`ptft quickstart` runs, on 2 CPU cores in a few minutes and without network:

1. continued masked-LM pretraining of all-MiniLM-L6-v2 on the unlabelled text of the training set
   (`training.pretrain`; `--model` picks another checkpoint, or a size such as ``tiny`` to pretrain
   from scratch with a vocabulary trained on that text);
2. freeze-then-unfreeze fine-tuning of the pretrained encoder on the labelled set
   (`training.finetune`; 10% of the training rows are held out for early stopping);
3. an evaluation table (per-class precision/recall/F1, confusion matrix) on the evaluation set;
4. a TF Serving SavedModel export (`export.job`), a new version under ``saved_models/quickstart/``;
5. a reload of that export with plain ``tf.saved_model.load`` and predictions on raw sentences.

The default data is the team-written review sentences shipped in ``ptft_keras/data/samples/``
(`SAMPLE_TRAIN`, `SAMPLE_DEV`); ``--train/--eval`` take your own CSV/TSV/JSONL files and
``--tfds glue/sst2`` a TensorFlow Datasets dataset (downloaded: needs network).

Example:
    $ ptft quickstart                                    # 1 to 3 minutes on 2 CPU cores
    $ ptft quickstart --train reviews.csv --eval held_out.csv --text-column text --label-column stars

    >>> from ptft_keras.jobs.quickstart import QuickstartConfig, SAMPLE_TRAIN
    >>> config = QuickstartConfig()
    >>> config.output, config.export_dir, SAMPLE_TRAIN.name
    ('runs/quickstart', 'saved_models/quickstart', 'sentiment_train.tsv')
    >>> from ptft_keras.jobs.quickstart import embed
    >>> vectors = embed(["A first sentence.", "Another one."])  # doctest: +SKIP
    >>> vectors.shape  # doctest: +SKIP
    (2, 384)
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ptft_keras.config import from_dict, option, to_dict
from ptft_keras.errors import ConfigError

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
SAMPLE_TRAIN = SAMPLES_DIR / "sentiment_train.tsv"
SAMPLE_DEV = SAMPLES_DIR / "sentiment_dev.tsv"

DEFAULT_SENTENCES = ("The movie was a delight from start to finish.", "I would not watch it again.")
DEMO_SENTENCES = (
    "The waiter was charming and the risotto was the best I have had.",
    "Two hours of my life I will never get back.",
    "The headphones broke after a week and support never answered.",
    "A gentle, funny film that I would happily watch again.",
)

#: what `ptft quickstart` writes under --output (and clears when it is rerun into the same directory)
MARKER_FILE = "quickstart.json"
CORPUS_FILE = "corpus.txt"
PRETRAIN_DIR, FINETUNE_DIR, EVALUATION_DIR = "pretrain", "finetune", "evaluation"
_OWN = (MARKER_FILE, CORPUS_FILE, PRETRAIN_DIR, FINETUNE_DIR, EVALUATION_DIR)


def _sentences(default, help):  # noqa: A002 - mirrors `option`
    return field(default_factory=lambda: list(default), metadata={"help": help})


# --------------------------------------------------------------------------------------------- embed
@dataclass
class EmbedConfig:
    model: Optional[str] = option(None, "checkpoint path or hub id (none: the offline all-MiniLM-L6-v2)")
    sentences: list[str] = _sentences(DEFAULT_SENTENCES, "sentences to embed")
    sequence_length: Optional[int] = option(None, "pad/truncate to this length (none: the longest sentence)")


def embed(sentences, model=None, *, sequence_length=None) -> np.ndarray:
    """Mean-pooled, L2-normalised sentence embeddings (the all-MiniLM-L6-v2 recipe).

    Example:
        >>> vectors = embed(["A cat sat on the mat.", "A kitten sat on a rug."])
        >>> vectors.shape, round(float(np.linalg.norm(vectors[0])), 4)
        ((2, 384), 1.0)
    """
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.backbone import Backbone
    from ptft_keras.models.default_checkpoint import default_checkpoint_path

    model = str(model or default_checkpoint_path())
    tokenizer = Tokenizer.from_pretrained(model)
    backbone = Backbone.from_pretrained(model)
    inputs = tokenizer(list(sentences), sequence_length=sequence_length)
    hidden = backbone(inputs)["sequence_output"].numpy()
    mask = inputs["padding_mask"].numpy()[..., None].astype(hidden.dtype)
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)


def run_embed(config: EmbedConfig) -> int:
    """The `ptft embed` command: each sentence's embedding (first 8 values) and the first two's cosine."""
    vectors = embed(config.sentences, config.model, sequence_length=config.sequence_length)
    np.set_printoptions(precision=4, suppress=True, linewidth=110)
    for sentence, vector in zip(config.sentences, vectors):
        print(f"{sentence!r}\n  dim={vector.shape[0]} first 8: {vector[:8]}")
    if len(vectors) > 1:
        print(f"cosine similarity of the first two: {float(vectors[0] @ vectors[1]):.4f}")
    return 0


# ---------------------------------------------------------------------------------------- quickstart
@dataclass
class QuickstartConfig:
    """Options of `ptft quickstart`. The defaults are tuned for the few hundred shipped sentences on a CPU."""

    output: str = option("runs/quickstart", "directory for the corpus, pretraining, fine-tuned model and reports "
                                            "(cleared of a previous quickstart's files when rerun)")
    export_dir: str = option("saved_models/quickstart", "TF Serving model base directory; each run adds a version")
    model: Optional[str] = option(None, "checkpoint to start from (none: the offline all-MiniLM-L6-v2), or a "
                                        "size (tiny, mini, ...) to pretrain from scratch on the training text")
    train: Optional[str] = option(None, "labelled CSV/TSV/JSONL training file (none: the shipped review sentences)")
    eval: Optional[str] = option(None, "labelled file to evaluate on (none: the shipped dev sentences with the "
                                       "shipped training data; with --train: the rows held out of it)")
    tfds: Optional[str] = option(None, "a TensorFlow Datasets name, e.g. glue/sst2: trains on its 'train' split, "
                                       "evaluates on 'validation' (downloads: needs network)")
    text_column: str = option("sentence", "column holding the text")
    label_column: str = option("label", "column holding the label")
    max_train_examples: Optional[int] = option(None, "use only the first N training rows (for pretraining too)",
                                               positive=True)
    pretrain_steps: int = option(40, "masked-LM steps before fine-tuning (0: fine-tune the checkpoint as it is)")
    pretrain_batch_size: int = option(16, "pretraining batch size", positive=True)
    pretrain_sequence_length: int = option(64, "pretraining tokens per sequence (sentences are packed)",
                                           positive=True)
    epochs: int = option(4, "fine-tuning epochs, the first one training only the head", positive=True)
    batch_size: int = option(16, "fine-tuning batch size", positive=True)
    learning_rate: float = option(2e-4, "peak fine-tuning learning rate (high: the sample set is small)",
                                  positive=True)
    sentences: list[str] = _sentences(DEMO_SENTENCES, "raw sentences to predict with the reloaded export")
    seed: int = option(0, "seed of pretraining, fine-tuning and the validation hold-out")
    verbose: Optional[int] = option(None, "Keras output: 0 silent, 1 progress bars, 2 a line per epoch "
                                          "(none: 1 on a terminal, else 2)")


@dataclass
class QuickstartResult:
    """What `quickstart` returns: where everything went, the evaluation report and the export's predictions."""

    output: Path
    checkpoint: str
    pretrained: Optional[Path]
    model_dir: Path
    evaluation: dict
    export: Path
    predictions: list[dict]
    seconds: dict
    files: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """JSON-ready: paths as strings, the evaluation metrics, predictions and stage times."""
        return {
            "output": str(self.output), "checkpoint": self.checkpoint,
            "pretrained": None if self.pretrained is None else str(self.pretrained),
            "model_dir": str(self.model_dir), "export": str(self.export),
            "metrics": self.evaluation.get("metrics", {}), "evaluated_on": self.evaluation.get("data"),
            "predictions": self.predictions, "seconds": self.seconds,
            "files": {name: str(path) for name, path in self.files.items()},
        }


@dataclass(frozen=True)
class _Data:
    train: str
    eval: Optional[str]
    description: str


def _data(config: QuickstartConfig) -> _Data:
    if config.tfds:
        if config.train or config.eval:
            raise ConfigError("tfds: pass either --tfds NAME or --train/--eval files, not both")
        name = config.tfds.removeprefix("tfds:").split("@")[0]
        return _Data(f"tfds:{name}@train", f"tfds:{name}@validation", f"TFDS {name} (train / validation splits)")
    if config.train:
        return _Data(config.train, config.eval, f"{config.train}" + (f" / {config.eval}" if config.eval else ""))
    if config.eval:
        raise ConfigError("eval: --eval needs --train too (the default evaluation set goes with the default data)")
    return _Data(str(SAMPLE_TRAIN), str(SAMPLE_DEV), "the shipped review sentences (ptft_keras/data/samples)")


def _prepare_output(output: Path, config: QuickstartConfig) -> None:
    """Create `output`, or clear the files of a previous quickstart from it; refuse other non-empty directories."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output: {output} is a file; pass a directory to --output")
    if output.is_dir() and any(output.iterdir()):
        if not (output / MARKER_FILE).is_file():
            raise ConfigError(f"output: {output} is not empty and holds no {MARKER_FILE} (it was not written by "
                              "ptft quickstart); pass an empty or new directory to --output")
        for name in _OWN:
            path = output / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER_FILE).write_text(json.dumps({"config": to_dict(config), "finished": False}, indent=2) + "\n",
                                      encoding="utf-8")


def write_corpus(texts, path, *, texts_per_document: int = 8) -> Path:
    """Write texts as a pretraining corpus: one text per line (whitespace collapsed), a blank line after
    every `texts_per_document` texts (parent directories are created). Pretraining packs each document into full sequences, so grouping
    short texts wastes less of each sequence on padding.

    Example:
        >>> import tempfile, os
        >>> path = write_corpus(["Great food.", "Slow\\nservice.", "Nice."], os.path.join(tempfile.mkdtemp(), "c.txt"),
        ...                     texts_per_document=2)
        >>> path.read_text()
        'Great food.\\nSlow service.\\n\\nNice.\\n'
    """
    lines = [" ".join(text.split()) for text in texts]
    documents = ["\n".join(lines[i:i + texts_per_document]) for i in range(0, len(lines), texts_per_document)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return path


def _stage(number: int, title: str) -> None:
    print(f"\n[{number}/5] {title}", flush=True)


def _pretrain(config: QuickstartConfig, checkpoint: str, corpus: Path, output: Path, verbose: int):
    from ptft_keras.jobs.pretrain import pretrain

    steps = config.pretrain_steps
    result = pretrain(
        corpus=str(corpus), output=str(output), model=checkpoint, max_steps=steps,
        batch_size=config.pretrain_batch_size, sequence_length=config.pretrain_sequence_length,
        heldout_lines=50, eval_every=steps, save_every=steps, log_every=max(1, steps // 20), seed=config.seed,
        verbose=verbose,
    )
    before = "" if result.initial_mlm_loss is None else f"{result.initial_mlm_loss:.3f} -> "
    print(f"held-out masked-LM loss {before}{result.mlm_loss:.3f} after {result.steps} steps")
    return Path(result.backbone)


def _evaluate(finetuned, data: _Data, config: QuickstartConfig, output: Path) -> tuple[dict, dict]:
    """`(report, files)` on the evaluation set, or the fine-tuning validation report when there is none."""
    from ptft_keras.data.sources import read_examples
    from ptft_keras.jobs.sequence_kind import score_examples
    from ptft_keras.jobs.report import format_report, write_report

    if data.eval is None:
        report = finetuned.report
        if not report.get("metrics"):
            print("no evaluation set and no held-out rows: pass --eval FILE to get an evaluation table")
            return report, {}
        print(f"no --eval file: the table is on the rows held out of {data.train}")
    else:
        examples = read_examples(data.eval, text_column=config.text_column, label_column=config.label_column)
        report = score_examples(finetuned.model, finetuned.tokenizer, finetuned.info, examples, split="evaluation")
        print(f"{report['count']} examples of {report['data']}")
    print(format_report(report))
    return report, write_report(output, report)


def _reload_and_predict(version_dir: Path, sentences) -> list[dict]:
    import tensorflow as tf

    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = serve(text=tf.constant(list(sentences)))
    probabilities = outputs["probabilities"].numpy()
    predictions = [
        {"text": text, "label": label.decode("utf-8"), "probability": round(float(p.max()), 4)}
        for text, label, p in zip(sentences, outputs["label"].numpy(), probabilities)
    ]
    width = max(len(p["label"]) for p in predictions)
    for p in predictions:
        print(f"  {p['label']:<{width}}  {p['probability']:.3f}  {p['text']}")
    return predictions


def quickstart(config: QuickstartConfig | None = None, /, **options) -> QuickstartResult:
    """Run `ptft quickstart`; pass a `QuickstartConfig` or its fields as keywords.

    Example:
        >>> result = quickstart(output="runs/qs", export_dir="saved_models/qs", pretrain_steps=10,
        ...                     epochs=2)  # doctest: +SKIP
        >>> result.evaluation["metrics"]["accuracy"], result.export  # doctest: +SKIP
        (0.87, PosixPath('saved_models/qs/1'))
    """
    from ptft_keras.data.sources import read_examples
    from ptft_keras.jobs.export import export_finetuned_dir
    from ptft_keras.models.default_checkpoint import default_checkpoint_path
    from ptft_keras.models.sizes import NAMED_SIZES
    from ptft_keras.training.callbacks import LOG_DIR
    from ptft_keras.jobs.finetune import finetune

    config = from_dict(QuickstartConfig, {**to_dict(config or QuickstartConfig()), **options})
    if config.pretrain_steps < 0:
        raise ConfigError(f"pretrain_steps: must be >= 0 (0 skips pretraining), got {config.pretrain_steps}")
    if config.model in NAMED_SIZES and config.pretrain_steps == 0:
        raise ConfigError(f"model: {config.model!r} is a size to pretrain from scratch; it needs --pretrain-steps > 0")
    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    checkpoint = config.model or str(default_checkpoint_path())
    data = _data(config)
    output = Path(config.output)
    _prepare_output(output, config)
    seconds, started = {}, time.perf_counter()
    print(f"ptft quickstart: {data.description}\n  start: {checkpoint}\n  output: {output}   export: {config.export_dir}")

    clock = time.perf_counter()
    pretrained = None
    if config.pretrain_steps:
        _stage(1, f"masked-LM pretraining ({config.pretrain_steps} steps) on the unlabelled training text")
        texts = read_examples(data.train, text_column=config.text_column).texts[: config.max_train_examples]
        corpus = write_corpus(texts, output / CORPUS_FILE)
        print(f"corpus: {len(texts)} texts -> {corpus}")
        pretrained = _pretrain(config, checkpoint, corpus, output / PRETRAIN_DIR, verbose)
    else:
        _stage(1, "masked-LM pretraining skipped (--pretrain-steps 0)")
    seconds["pretrain"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _stage(2, "fine-tuning: the head alone for one epoch, then the whole encoder (layer-wise learning rates)")
    finetuned = finetune(
        model=str(pretrained or checkpoint), train=data.train, output=str(output / FINETUNE_DIR),
        text_column=config.text_column, label_column=config.label_column,
        max_train_examples=config.max_train_examples, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, seed=config.seed, verbose=verbose,
    )
    seconds["finetune"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _stage(3, "evaluation")
    evaluation, files = _evaluate(finetuned, data, config, output / EVALUATION_DIR)
    seconds["evaluate"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _stage(4, f"export for TF Serving into {config.export_dir}")
    version_dir = Path(export_finetuned_dir(output / FINETUNE_DIR, config.export_dir))
    seconds["export"] = time.perf_counter() - clock

    clock = time.perf_counter()
    _stage(5, f"reload {version_dir} with tf.saved_model.load and predict raw sentences")
    predictions = _reload_and_predict(version_dir, config.sentences)
    seconds["reload_predict"] = time.perf_counter() - clock
    seconds = {name: round(value, 1) for name, value in {**seconds, "total": time.perf_counter() - started}.items()}

    result = QuickstartResult(output=output, checkpoint=checkpoint, pretrained=pretrained,
                              model_dir=output / FINETUNE_DIR, evaluation=evaluation, export=version_dir,
                              predictions=predictions, seconds=seconds,
                              files={f"evaluation {name}": path for name, path in files.items()})
    (output / MARKER_FILE).write_text(
        json.dumps({"config": to_dict(config), "finished": True, **result.summary()}, indent=2) + "\n",
        encoding="utf-8")
    _print_artefacts(result, log_dir=output / PRETRAIN_DIR / LOG_DIR)
    return result


def _print_artefacts(result: QuickstartResult, log_dir: Path) -> None:
    rows = []
    if result.pretrained is not None:
        rows += [("unlabelled corpus", result.output / CORPUS_FILE),
                 ("pretrained encoder", f"{result.pretrained}  (Hugging Face directory, masked-LM head, tokenizer)")]
    rows += [("fine-tuned model", f"{result.model_dir}  (ptft evaluate / predict / export --model DIR)")]
    rows += [(name, path) for name, path in result.files.items()]
    rows += [("SavedModel", f"{result.export}  (TF Serving base: {result.export.parent})"),
             ("run summary", result.output / MARKER_FILE)]
    metrics = result.evaluation.get("metrics") or {}
    print("\nwhere everything went:")
    width = max(len(name) for name, _ in rows)
    for name, path in rows:
        print(f"  {name:<{width}}  {path}")
    if "accuracy" in metrics:
        print(f"evaluation accuracy: {metrics['accuracy']:.4f} on {result.evaluation.get('count')} examples")
    if log_dir.is_dir():
        print(f"TensorBoard (pretraining curves): tensorboard --logdir {log_dir}")
    print(f"done in {result.seconds['total']:.0f} s " + "(" + ", ".join(
        f"{name} {value:.0f} s" for name, value in result.seconds.items() if name != "total") + ")")


def run_quickstart(config: QuickstartConfig) -> int:
    """The `ptft quickstart` command."""
    quickstart(config)
    return 0


def run(config) -> int:
    """Entry point of both commands of this module (`cli.COMMANDS`): dispatch on the config type."""
    if isinstance(config, EmbedConfig):
        return run_embed(config)
    return run_quickstart(config)
