"""`ptft distill`: distil a fine-tuned classifier (the teacher) into a smaller student model directory.

The student is trained by the one fine-tuning skeleton (`jobs.finetune.run_finetune`) with a
`jobs.distill_kind.DistillKind`, so its output is an ordinary model directory (`ptft evaluate`, `predict`
and `export` take it unchanged) whose training_config.json names the teacher and the transfer set.

1. The teacher is a directory `ptft finetune --task classification` wrote.
2. The student (`--student`): `bilstm` (the default: a random BiLSTM on a WordPiece vocabulary learnt
   from the transfer set, as `ptft finetune --model bilstm`; `--encoder-options`, `--vocab-size`,
   `--word-vectors`), a BERT size (`tiny`, `mini`, ...: random init with the teacher's vocabulary),
   `teacher:N` (the teacher's embeddings and N of its blocks, DistilBERT style; `teacher:0,2,4` names
   them), or any checkpoint path. Its starting checkpoint is written to OUTPUT/student_init
   and removed when the run finishes.
3. The transfer set: the labelled `--train` rows plus `--unlabelled` texts (a column file, or a plain
   text file with one text per line), plus `--augment` N augmented copies of each of those texts (token
   masking with the teacher's mask token, n-gram sampling: Tang et al. 2019, `data.augmentation`,
   seeded by `--seed`). The teacher labels every text once, before training; the logits are cached in
   OUTPUT/teacher_logits (or `--teacher-cache`), the transfer set and each augmented copy in a file of
   its own, and reused by every epoch and later runs.
4. The loss: `--alpha` x cross-entropy on the hard labels (where a row has one) + (1 - alpha) x the soft
   targets: temperature-softened KL (`--soft-loss kl`, `--temperature`) or logit MSE (`--soft-loss mse`).
5. Validation (`--validation`, else a held-out share of the labelled rows) scores the student and the
   teacher; early stopping keeps the student's best epoch.

Example:
    $ ptft distill --teacher runs/sst2 --train train.tsv --validation dev.tsv --text-column sentence \\
        --label-column label --unlabelled more_sentences.txt --output runs/sst2-bilstm

    >>> from ptft_keras.jobs.distill import distill
    >>> result = distill(teacher="runs/sst2", train="train.tsv", validation="dev.tsv", text_column="sentence",
    ...                  unlabelled="more_sentences.txt", output="runs/sst2-bilstm")  # doctest: +SKIP
    >>> result.report["metrics"]["accuracy"], result.report["teacher"]["metrics"]["accuracy"]  # doctest: +SKIP
    (0.86, 0.87)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptft_keras.config import from_dict, option, to_dict
from ptft_keras.data.augmentation import DEFAULT_MAX_NGRAM, DEFAULT_P_MASK, DEFAULT_P_NGRAM
from ptft_keras.errors import ConfigError
from ptft_keras.models.sizes import NAMED_SIZES

#: the default student. Measured on SST-2 in the issue's setting (benchmarks/distillation.py, RESULTS.md: 8,000
#: labelled rows + 59,349 unlabelled sentences, an all-MiniLM-L6-v2 teacher at 0.860 dev accuracy): `bilstm`
#: reached 0.828 at 21x the teacher's exported batch-64 throughput with 1.3M parameters, `tiny` 0.800 at 15x with
#: 4.4M; on a 16k-text transfer set `teacher:2` was 2.4x only. The BiLSTM is both the more accurate and the faster.
DEFAULT_STUDENT = "bilstm"
#: a random-init student's peak learning rate (no head-only stage, no layer-wise decay: nothing is pretrained)
FROM_SCRATCH_LEARNING_RATE = 5e-4
#: a random-init BiLSTM student's (as `ptft finetune --model bilstm`: jobs.encoder_loading.CLASSIC_DEFAULTS)
BILSTM_LEARNING_RATE = 1e-3
#: augmented copies per transfer-set text (`--augment`). Measured on SST-2 (benchmarks/RESULTS.md, 3,000 labelled
#: rows, no unlabelled text, same student steps, seeds 0 and 1): 4 copies gave the BiLSTM +1.5 / +0.9 points and
#: `tiny` +1.3 / -0.6, while each copy costs a teacher pass over the whole transfer set (with 59k unlabelled
#: sentences, 4 copies are ~270k teacher predictions): off by default; `--augment 4` for a small transfer set.
DEFAULT_AUGMENT = 0
STUDENT_INIT_DIR = "student_init"
TEACHER_CACHE_DIR = "teacher_logits"


@dataclass
class DistillConfig:
    """Options of `ptft distill` (flags, or keys of a `--config` YAML file)."""

    teacher: Optional[str] = option(None, "the teacher: a classification model directory `ptft finetune` wrote")
    train: Optional[str] = option(None, "labelled training rows (CSV, TSV or JSONL), part of the transfer set")
    validation: Optional[str] = option(None, "validation rows (default: hold out --validation-fraction of --train)")
    output: Optional[str] = option(None, "directory for the student: a model directory like `ptft finetune`'s")
    student: str = option(
        DEFAULT_STUDENT, f"a BERT size ({'|'.join(NAMED_SIZES)}: random init, the teacher's vocabulary), "
        "teacher:N (the teacher's embeddings and N of its blocks, spread evenly; teacher:0,2,4 names them), bilstm "
        "(a random BiLSTM, its WordPiece vocabulary learnt from the transfer set), or a checkpoint path"
    )
    encoder_options: Optional[str] = option(
        None, "--student bilstm: sizes of the fresh encoder as key=value pairs, e.g. 'embedding_dim=128,"
        "lstm_units=128,num_layers=1,dropout=0.1,pooling=max' (those are the defaults)")
    vocab_size: Optional[int] = option(
        None, "--student bilstm: entries of the WordPiece vocabulary trained on the transfer set's texts (default "
        "8000)", positive=True)
    word_vectors: Optional[str] = option(
        None, "BiLSTM students: initialise the embedding rows found in this word2vec (text or .bin) or GloVe file")
    unlabelled: Optional[str] = option(
        None, "more texts for the teacher to label: a CSV/TSV/JSONL file (column --unlabelled-column) or a plain "
        "text file, one text per line"
    )
    unlabelled_column: Optional[str] = option(None, "the --unlabelled file's text column (default: --text-column)")
    augment: int = option(DEFAULT_AUGMENT, "augmented copies of each transfer-set text for the teacher to label "
                                           "(Tang et al. 2019: token masking, n-gram sampling; seeded by --seed; a "
                                           "copy equal to its text is left out); 0: none")
    augment_mask: float = option(DEFAULT_P_MASK, "--augment: probability that a word becomes the teacher's mask "
                                                 "token")
    augment_ngram: float = option(DEFAULT_P_NGRAM, "--augment: probability that a copy keeps only a random n-gram "
                                                   f"of its words, n from 1 to {DEFAULT_MAX_NGRAM}")
    text_column: Optional[str] = option(None, "column holding the text (default: the teacher's)")
    text_pair_column: Optional[str] = option(None, "column holding the second text of pairs (default: the teacher's)")
    label_column: Optional[str] = option(None, "column holding the label (default: the teacher's)")
    max_train_examples: Optional[int] = option(None, "use only the first N labelled rows, in file order", positive=True)
    max_unlabelled_examples: Optional[int] = option(None, "use only the first N unlabelled texts", positive=True)
    validation_fraction: float = option(0.1, "share of the labelled rows held out (seeded) when --validation is not "
                                             "given; 0: none")
    epochs: int = option(3, "passes over the transfer set", positive=True)
    batch_size: int = option(32, "batch size", positive=True)
    learning_rate: Optional[float] = option(
        None, f"peak AdamW learning rate (default: {FROM_SCRATCH_LEARNING_RATE:g} for a size student and "
        f"{BILSTM_LEARNING_RATE:g} for bilstm, which start from random weights, without head-only stage or "
        "layer-wise decay; else ptft finetune's recipe)",
        positive=True
    )
    temperature: float = option(2.0, "softmax temperature of the KL soft targets (1: the teacher's probabilities)",
                                positive=True)
    alpha: float = option(0.5, "weight of the hard labels, where a row has one (0: soft targets only); the soft "
                               "targets get 1 - alpha, rows without a label only soft targets")
    soft_loss: str = option("kl", "soft-target loss: 'kl' (temperature-softened KL, x T^2) or 'mse' (on the logits)",
                            choices=("kl", "mse"))
    sequence_length: Optional[int] = option(None, "tokens per sequence (default: the teacher's)", positive=True)
    teacher_cache: Optional[str] = option(None, "directory of the cached teacher logits (default: OUTPUT/"
                                                f"{TEACHER_CACHE_DIR}); share it between students of one teacher")
    early_stopping_patience: int = option(2, "stop after this many epochs without a better validation accuracy "
                                             "(0: never); the best epoch's weights are kept either way")
    seed: int = option(0, "seed of the student's init, dropout, shuffling, the validation hold-out and --augment")
    overwrite: bool = option(False, "replace a finished model directory at --output")
    verbose: int = option(1, "Keras progress output: 0 silent, 1 progress bars, 2 one line per epoch")


def finetune_config(config: DistillConfig, teacher_info, student_checkpoint: str, from_scratch: bool,
                    bilstm: bool = False):
    """The `FinetuneConfig` the skeleton runs: columns default to the teacher's, a random-init student gets
    `FROM_SCRATCH_LEARNING_RATE` (`BILSTM_LEARNING_RATE` for ``bilstm``, whose vocabulary, sizes and word
    vectors its starting checkpoint already has) and no head-only stage or layer-wise decay.

    Example:
        >>> import types
        >>> info = types.SimpleNamespace(text_column="sentence", text_pair_column=None, label_column="label")
        >>> fc = finetune_config(DistillConfig(teacher="t", train="a.tsv", output="o"), info, "o/student_init", True)
        >>> fc.model, fc.text_column, fc.learning_rate, fc.freeze_steps, fc.layer_lr_decay
        ('o/student_init', 'sentence', 0.0005, 0, 1.0)
    """
    from ptft_keras.jobs.finetune import FinetuneConfig

    recipe = {}
    if from_scratch:
        recipe = {"learning_rate": BILSTM_LEARNING_RATE if bilstm else FROM_SCRATCH_LEARNING_RATE,
                  "freeze_steps": 0, "layer_lr_decay": 1.0}
    classic = {"encoder_options": config.encoder_options, "vocab_size": config.vocab_size,
               "word_vectors": config.word_vectors}
    if bilstm:  # built into the starting checkpoint (jobs.distill_kind.student_checkpoint)
        classic = {}
    if config.learning_rate is not None:
        recipe["learning_rate"] = config.learning_rate
    return FinetuneConfig(
        model=student_checkpoint, train=config.train, validation=config.validation, output=config.output,
        task="classification", text_column=config.text_column or teacher_info.text_column,
        text_pair_column=config.text_pair_column or teacher_info.text_pair_column,
        label_column=config.label_column or teacher_info.label_column, max_train_examples=config.max_train_examples,
        validation_fraction=config.validation_fraction, epochs=config.epochs, batch_size=config.batch_size,
        sequence_length=config.sequence_length, early_stopping_patience=config.early_stopping_patience,
        seed=config.seed, overwrite=config.overwrite, verbose=config.verbose, **classic, **recipe,
    )


def distill(config: DistillConfig | None = None, /, **options):
    """Distil as `ptft distill` does; pass a `DistillConfig` or its fields as keywords. Returns the skeleton's
    `FinetuneResult` (the student, its tokenizer, `ModelInfo`, report, history, files).

    `teacher` may also be a loaded `(model, tokenizer, info)` (from `jobs.model_dir.load_model_dir`).

    Example:
        >>> result = distill(teacher="runs/sst2", train="train.tsv", text_column="sentence",
        ...                  output="runs/sst2-tiny", student="tiny")  # doctest: +SKIP
    """
    loaded = options.pop("teacher") if isinstance(options.get("teacher"), (tuple, list)) else None
    config = from_dict(DistillConfig, {**(to_dict(config) if config else {}), **options})
    if loaded is None and not config.teacher:
        raise ConfigError("distill needs a teacher: pass teacher=DIR (--teacher DIR), the --output of ptft finetune")
    for name in ("train", "output"):
        if not getattr(config, name):
            raise ConfigError(f"distill needs {name}: pass {name}=... (--{name} ...)")
    return run_distill(config, loaded or config.teacher)


def run_distill(config: DistillConfig, teacher):
    """Resolve the student and the kind, then run the fine-tuning skeleton; the student's starting checkpoint
    is removed once the model directory is written."""
    from ptft_keras.jobs.distill_kind import BILSTM, DistillKind, parse_student, student_checkpoint
    from ptft_keras.jobs.finetune import fingerprint, remove_tree, resume_state, run_finetune
    from ptft_keras.jobs.task_kind import load

    loaded = load(teacher)
    output = Path(config.output)
    source = parse_student(config.student)[0]
    init_dir = None if source == "checkpoint" else output / STUDENT_INIT_DIR
    finetune = finetune_config(config, loaded[2], str(init_dir or config.student), from_scratch=source != "checkpoint",
                               bilstm=source == BILSTM)
    resume_state(output, finetune, fingerprint(finetune))  # a finished directory is refused before any work
    kind = DistillKind(
        loaded, unlabelled=config.unlabelled, unlabelled_column=config.unlabelled_column,
        max_unlabelled=config.max_unlabelled_examples, temperature=config.temperature, alpha=config.alpha,
        soft_loss=config.soft_loss, cache_dir=config.teacher_cache or output / TEACHER_CACHE_DIR,
        augmentation=augmentation(config, loaded[1]),
    )
    texts, bilstm = None, None
    if source == BILSTM:  # its vocabulary: learnt from the transfer set as read, without the augmented copies
        from types import SimpleNamespace

        from ptft_keras.jobs.encoder_loading import training_texts

        transfer = kind.read_splits(finetune).train
        texts = training_texts(SimpleNamespace(train=transfer.select(range(kind.parts[0][1]))),
                               finetune.text_normalization)
        bilstm = {"vocab_size": config.vocab_size, "encoder_options": config.encoder_options,
                  "word_vectors": config.word_vectors, "sequence_length": config.sequence_length}
    _, described, _ = student_checkpoint(config.student, loaded, init_dir, seed=config.seed, texts=texts,
                                         bilstm=bilstm)
    kind.student = {"student": config.student, "student_init": described}
    result = run_finetune(finetune, kind)
    if init_dir is not None:
        remove_tree(init_dir)
    return result


def augmentation(config: DistillConfig, teacher_tokenizer):
    """The `data.augmentation.Augmentation` of `--augment` (None for 0): masked words become the teacher's mask
    token, which its tokenizer reads in text as that token (else its unknown token is used).

    Example:
        >>> import types
        >>> tokenizer = types.SimpleNamespace(special_tokens={"mask_token": "[MASK]", "unk_token": "[UNK]"},
        ...                                   special_tokens_in_strings=True)
        >>> augmentation(DistillConfig(augment=4, seed=3), tokenizer)  # doctest: +NORMALIZE_WHITESPACE
        Augmentation(copies=4, p_mask=0.1, p_ngram=0.25, max_ngram=5, mask_token='[MASK]', seed=3)
        >>> augmentation(DistillConfig(augment=0), tokenizer) is None
        True
    """
    from ptft_keras.data.augmentation import Augmentation

    if config.augment < 0:
        raise ConfigError(f"augment: give 0 (none) or a number of copies per text, not {config.augment}")
    if not config.augment:
        return None
    tokens = getattr(teacher_tokenizer, "special_tokens", {}) or {}
    mask = tokens.get("mask_token") if getattr(teacher_tokenizer, "special_tokens_in_strings", True) else None
    try:
        return Augmentation(copies=config.augment, p_mask=config.augment_mask, p_ngram=config.augment_ngram,
                            max_ngram=DEFAULT_MAX_NGRAM, mask_token=mask or tokens.get("unk_token") or "[MASK]",
                            seed=config.seed)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def run(config: DistillConfig) -> int:
    distill(config)
    return 0
