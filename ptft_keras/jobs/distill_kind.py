"""Distillation as a task kind: `DistillKind` plugs a teacher's soft targets into the one fine-tuning skeleton
(`jobs.finetune.run_finetune`), so a distilled student is trained, early-stopped, scored and written exactly
as `ptft finetune` writes a model directory.

What it changes against `SequenceKind` (classification):

- rows: the transfer set, the labelled training rows followed by the `--unlabelled` texts (label None), then
  the augmented copies of all of them (`--augment`, label None);
  labels are the teacher's label names (a training label the teacher does not know is an error);
- sequence length: the teacher's (the student reads what the teacher read for its soft targets);
- batches: each training row carries `pack_targets(label or -1, teacher logits)`; the teacher's logits are
  computed once per example before training (`jobs.teacher_outputs`, cached on disk) and ride in the
  dataset, so every epoch reuses them; validation rows carry their plain labels;
- model: `tasks.distiller.DistillationStudent`, a `SequenceClassifier` trained with `DistillationLoss`;
- report: the student's validation report, plus the teacher's on the same rows (``report["teacher"]``, its
  logits cached as the transfer set's);
- training_config.json: a ``distillation`` entry naming the teacher, the student and the transfer set.

Students (`student_checkpoint`): a BERT size from `models.sizes.NAMED_SIZES` (random init, the teacher's
vocabulary), ``teacher:N`` (N of the teacher's blocks, spread evenly from the bottom as DistilBERT took
every other one; ``teacher:0,2,4`` names them), ``bilstm`` (a random `models.bilstm.BiLSTMEncoder` on a
WordPiece vocabulary learnt from the transfer set without its augmented copies, as `ptft finetune --model
bilstm` builds it), or any
checkpoint path (its own tokenizer; a BiLSTM directory too).

Augmentation (`augmentation`, Tang et al. 2019): `copies` masked / n-gram-sampled copies of every text of the
transfer set (`data.augmentation`, seeded) join it as unlabelled rows, labelled by the teacher alone. The
teacher's logits are computed and cached per part: the transfer set itself (the same cache file as without
augmentation), then each copy, so a run with more copies reuses the copies an earlier run labelled.

Example:
    >>> parse_student("tiny"), parse_student("teacher:2"), parse_student("teacher:0,3"), parse_student("ckpt/")
    (('size', 'tiny'), ('teacher', 2), ('teacher', [0, 3]), ('checkpoint', 'ckpt/'))
    >>> parse_student("bilstm")
    ('bilstm', 'bilstm')
    >>> teacher_layers(3, 6), teacher_layers(2, 6), teacher_layers([1, 5], 6)
    ([0, 2, 4], [0, 3], [1, 5])
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ptft_keras.data.augmentation import Augmentation, augment
from ptft_keras.errors import ConfigError
from ptft_keras.jobs.sequence_kind import SequenceKind, targets_for
from ptft_keras.jobs.task_kind import Prepared, Splits, load
from ptft_keras.jobs.teacher_outputs import teacher_logits
from ptft_keras.models.sizes import NAMED_SIZES

TEACHER_PREFIX = "teacher:"
#: the `--student` of a fresh BiLSTM (`models.bilstm`; its vocabulary is learnt from the transfer set's texts)
BILSTM = "bilstm"
_LAYER_NAME = re.compile(r"^(.*\blayer\.)(\d+)(\..*)$")


# ------------------------------------------------------------------------------------------ students
def parse_student(spec: str):
    """`("size", name)`, `("teacher", N or [layer, ...])`, `("bilstm", "bilstm")` or `("checkpoint", path)` for a
    `--student` value."""
    spec = str(spec).strip()
    if spec in NAMED_SIZES:
        return "size", spec
    if spec.startswith(TEACHER_PREFIX):
        value = spec[len(TEACHER_PREFIX):]
        try:
            layers = [int(part) for part in value.split(",")]
        except ValueError:
            raise ConfigError(f"student: {spec!r}: after 'teacher:' give a number of blocks (teacher:3) or the block "
                              "indices to keep (teacher:0,2,4)") from None
        return "teacher", layers[0] if len(layers) == 1 and "," not in value else layers
    if spec == BILSTM:
        return "bilstm", spec
    return "checkpoint", spec


def teacher_layers(count_or_layers, num_layers: int) -> list[int]:
    """The teacher blocks a `teacher:N` student starts from: N spread evenly from the bottom (every other one
    for half the depth, as DistilBERT), or the listed indices."""
    if isinstance(count_or_layers, int):
        if not 1 <= count_or_layers <= num_layers:
            raise ConfigError(f"student: teacher:{count_or_layers} needs 1 to {num_layers} blocks (the teacher has "
                              f"{num_layers})")
        return [i * num_layers // count_or_layers for i in range(count_or_layers)]
    layers = list(count_or_layers)
    if not layers or sorted(set(layers)) != layers or layers[0] < 0 or layers[-1] >= num_layers:
        raise ConfigError(f"student: teacher:{','.join(map(str, layers))} must list increasing block indices from 0 "
                          f"to {num_layers - 1}")
    return layers


def backbone_from_layers(backbone, layers):
    """A new backbone of `backbone`'s kind with its embeddings, pooler and the blocks `layers` (in order).

    Example:
        >>> from ptft_keras.models.backbone import Backbone
        >>> teacher = Backbone.from_size("tiny", vocabulary_size=50, num_layers=4)
        >>> student = backbone_from_layers(teacher, [1, 3])
        >>> student.num_layers, bool(np.allclose(student.transformer_layers[1].weights[0],
        ...                                      teacher.transformer_layers[3].weights[0]))
        (2, True)
    """
    from ptft_keras.models.hf_convert import export_hf_weights, load_hf_weights

    student = type(backbone).from_config({**backbone.get_config(), "num_layers": len(layers)})
    renumber = {old: new for new, old in enumerate(layers)}
    tensors = {}
    for name, tensor in export_hf_weights(backbone).items():
        match = _LAYER_NAME.match(name)
        if match is None:
            tensors[name] = tensor
        elif int(match.group(2)) in renumber:
            tensors[f"{match.group(1)}{renumber[int(match.group(2))]}{match.group(3)}"] = tensor
    load_hf_weights(student, tensors)
    return student


def student_checkpoint(spec: str, teacher, directory, *, seed: int = 0, texts=None,
                       bilstm: dict | None = None) -> tuple[str, str, bool]:
    """Write the student's starting checkpoint (HF layout, with the teacher's tokenizer) into `directory`.

    Returns `(checkpoint for --model, what it is in words, whether it starts from random weights)`; a
    checkpoint path is returned as it is (nothing written). A ``bilstm`` student is a random
    `BiLSTMEncoder` saved with its own tokenizer, a WordPiece vocabulary learnt from `texts` (the transfer
    set without its augmented copies: repeated words would pass the vocabulary's minimum count, and masks
    add none) as `jobs.encoder_loading.classic_encoder` builds it; `bilstm` holds its `vocab_size`,
    `encoder_options` and `word_vectors`.
    """
    import keras

    from ptft_keras.models.backbone import Backbone

    kind, value = parse_student(spec)
    if kind == "bilstm":
        from ptft_keras.jobs.encoder_loading import classic_encoder

        keras.utils.set_random_seed(seed)
        encoder, tokenizer = classic_encoder(BILSTM, texts, **(bilstm or {}))
        encoder.save_pretrained(directory, tokenizer=tokenizer)
        return str(directory), (f"a random BiLSTM (embedding {encoder.embedding_dim}, hidden {encoder.hidden_dim}) "
                                f"on a WordPiece vocabulary of {tokenizer.vocab_size} entries learnt from the "
                                f"{len(texts)} texts of the transfer set"), True
    if kind == "checkpoint":
        if not Path(value).exists():
            raise ConfigError(f"student: {value!r} is neither a size ({', '.join(NAMED_SIZES)}), teacher:N, nor an "
                              "existing checkpoint path")
        return value, f"the checkpoint {value}", False
    model, tokenizer, _ = load(teacher)
    keras.utils.set_random_seed(seed)
    if kind == "size":
        backbone = Backbone.from_size(value, model_type=model.backbone.model_type, vocabulary_size=tokenizer.vocab_size)
        described = (f"a random {value} {backbone.model_type.upper()} ({backbone.num_layers} layers, hidden "
                     f"{backbone.hidden_dim}) with the teacher's vocabulary")
    else:
        layers = teacher_layers(value, model.backbone.num_layers)
        backbone = backbone_from_layers(model.backbone, layers)
        described = (f"the teacher's embeddings and blocks {', '.join(map(str, layers))} of "
                     f"{model.backbone.num_layers}")
    backbone.save_pretrained(directory, tokenizer=tokenizer)
    return str(directory), described, kind == "size"


# ------------------------------------------------------------------------------------------ the kind
def concat_examples(first, second):
    """The rows of `first` then those of `second` (`data.sources.Examples`); `second`'s labels are None."""
    from ptft_keras.data.sources import Examples

    if second is None:
        return first
    offset = len(first.files)
    return Examples(
        texts=first.texts + second.texts,
        pairs=None if first.pairs is None else first.pairs + second.pairs,
        labels=list(first.labels) + [None] * len(second),
        locations=first.locations + second.locations,
        file_ids=first.file_ids + [offset + i for i in second.file_ids],
        files=first.files + second.files,
    )


def augmented_examples(examples, augmentation: Augmentation):
    """The augmented copies of `examples`' texts (`data.augmentation.augment`) as unlabelled `Examples` (each row
    keeping its source's location), and where each copy's rows start and stop in them.

    Example:
        >>> from ptft_keras.data.sources import Examples
        >>> rows = Examples(["a fine film", "dull"], None, ["1", "0"], [("t.tsv", 2), ("t.tsv", 3)], [0, 0], ["t.tsv"])
        >>> extra, parts = augmented_examples(rows, Augmentation(copies=2, p_mask=1.0))
        >>> extra.texts, extra.labels, extra.locations[0], parts
        (['[MASK] [MASK] [MASK]', '[MASK]'], [None, None], ('t.tsv', 2), [(0, 2), (2, 2)])
    """
    from ptft_keras.data.sources import Examples

    rows = augment(examples.texts, examples.pairs, augmentation=augmentation)
    parts = []
    for copy in range(augmentation.copies):
        start = parts[-1][1] if parts else 0
        stop = start
        while stop < len(rows) and rows[stop].copy == copy:
            stop += 1
        parts.append((start, stop))
    extra = Examples(
        texts=[row.text for row in rows], pairs=None if examples.pairs is None else [row.pair for row in rows],
        labels=[None] * len(rows), locations=[examples.locations[row.source] for row in rows],
        file_ids=[examples.file_ids[row.source] for row in rows], files=examples.files,
    )
    return extra, parts


def read_unlabelled(path, *, text_column: str, text_pair_column: str | None = None, limit: int | None = None):
    """Texts for the teacher to label: a CSV/TSV/JSONL file's `text_column` (and `text_pair_column`), or a plain
    text file, one text per line (blank lines skipped); the first `limit` of them."""
    from ptft_keras.data.sources import detect_format, expand_files, read_examples
    from ptft_keras.jobs.task_kind import first_rows

    files = expand_files(path)
    plain = all(detect_format(f) == "text" for f in files)
    if plain and text_pair_column:
        raise ConfigError(f"unlabelled: {path} is plain text, one text per line; a pair task (--text-pair-column "
                          f"{text_pair_column}) needs a CSV/TSV/JSONL file with both columns")
    examples = read_examples(path, text_column="text" if plain else text_column,
                             text_pair_column=None if plain else text_pair_column)
    return first_rows(examples, limit)


class DistillKind(SequenceKind):
    """`SequenceKind` (classification) with a teacher's soft targets; see the module docstring.

    Args:
        teacher: the teacher's model directory, or its loaded `(model, tokenizer, info)`.
        unlabelled: more texts for the teacher to label (a file; see `read_unlabelled`), or None.
        unlabelled_column: their column (default: the training text column).
        max_unlabelled: use only the first N of them.
        temperature, alpha, soft_loss: the `DistillationLoss`.
        cache_dir: where teacher logits are kept (`jobs.teacher_outputs`); None: not kept.
        student: the `--student` value and its description, recorded in training_config.json.
        augmentation: a `data.augmentation.Augmentation` (copies of the transfer set's texts), or None.
    """

    tasks = ("classification",)

    def __init__(self, teacher, *, unlabelled=None, unlabelled_column=None, max_unlabelled=None,
                 temperature: float = 2.0, alpha: float = 0.5, soft_loss: str = "kl", cache_dir=None,
                 student: dict | None = None, augmentation: Augmentation | None = None):
        from ptft_keras.tasks.distiller import check_distillation

        check_distillation(temperature, alpha, soft_loss)
        self.teacher = load(teacher)
        self.teacher_dir = str(self.teacher[2].directory)
        task = self.teacher[2].task
        if task != "classification":
            raise ConfigError(f"teacher: {self.teacher_dir} is a {task} model; distillation takes classification "
                              "teachers")
        self.unlabelled, self.unlabelled_column, self.max_unlabelled = unlabelled, unlabelled_column, max_unlabelled
        self.temperature, self.alpha, self.soft_loss = temperature, alpha, soft_loss
        self.cache_dir = cache_dir
        self.student = dict(student or {})
        self.augmentation = augmentation if augmentation is not None and augmentation.copies else None
        self.counts = {}
        self.parts = []  # (start, stop) of the transfer set's rows that the teacher labels in one go (and caches)

    def fingerprint_extra(self, config) -> dict:
        return {"teacher": self.teacher_dir, "unlabelled": None if self.unlabelled is None else str(self.unlabelled),
                "unlabelled_column": self.unlabelled_column, "max_unlabelled": self.max_unlabelled,
                "temperature": self.temperature, "alpha": self.alpha, "soft_loss": self.soft_loss,
                **({"augmentation": self.augmentation_settings()} if self.augmentation else {})}

    def augmentation_settings(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.augmentation)

    @property
    def label_names(self) -> list[str]:
        return list(self.teacher[2].label_names)

    def read_splits(self, config) -> Splits:
        import dataclasses

        splits = super().read_splits(config)
        teacher_info = dataclasses.replace(self.teacher[2], label_column=config.label_column)
        targets_for(teacher_info, splits.train)  # a label the teacher does not know: DataError naming file and line
        extra = None
        if self.unlabelled:
            extra = read_unlabelled(self.unlabelled, text_column=self.unlabelled_column or config.text_column,
                                    text_pair_column=config.text_pair_column, limit=self.max_unlabelled)
        self.counts = {"labelled": len(splits.train), "unlabelled": 0 if extra is None else len(extra)}
        transfer = concat_examples(splits.train, extra)
        self.parts = [(0, len(transfer))]
        if self.augmentation:
            copies, parts = augmented_examples(transfer, self.augmentation)
            self.parts += [(len(transfer) + start, len(transfer) + stop) for start, stop in parts if stop > start]
            self.counts["augmented"] = len(copies)
            transfer = concat_examples(transfer, copies)
        return Splits(transfer, splits.validation, splits.validation_name, self.label_names)

    def describe(self, config, splits: Splits) -> list[str]:
        unlabelled = (f" + {self.counts['unlabelled']} texts of {self.unlabelled} labelled by the teacher"
                      if self.unlabelled else "")
        augmented = ""
        if self.augmentation:
            a = self.augmentation
            augmented = (f" + {self.counts['augmented']} augmented copies ({a.copies} per text, duplicates left out; "
                         f"mask {a.p_mask:g} with {a.mask_token}, n-gram {a.p_ngram:g} with n up to {a.max_ngram})")
        return [f"teacher: {self.teacher_dir}; student: {self.student.get('student_init', config.model)}",
                f"transfer set: {self.counts['labelled']} labelled rows of {config.train}{unlabelled}{augmented}",
                f"loss: {self.alpha:g} x hard labels + {1 - self.alpha:g} x soft targets ({self.soft_loss}"
                + (f", temperature {self.temperature:g})" if self.soft_loss == "kl" else ")"),
                *super().describe(config, splits)]

    def choose_sequence_length(self, config, tokenizer, splits: Splits, limit: int) -> tuple[int, str]:
        """The teacher's: the student reads as much of each text as the teacher did for its soft targets."""
        length = self.teacher[2].sequence_length
        if length is None:
            return super().choose_sequence_length(config, tokenizer, splits, limit)
        return min(length, limit), f"the teacher's, capped at {limit}; set --sequence-length to change it"

    def datasets(self, config, tokenizer, splits: Splits, info, *, padding: str, drop_remainder: bool) -> Prepared:
        from ptft_keras.tasks.distiller import UNLABELLED, pack_targets

        def dataset(examples, targets, shuffle):
            return self.encoded_dataset(config, tokenizer, info, examples, targets, padding=padding, shuffle=shuffle,
                                        drop_remainder=drop_remainder)

        train = splits.train
        labelled = [i for i, label in enumerate(train.labels) if label is not None]
        if self.alpha == 1 and len(labelled) == len(train):  # hard labels only: the soft targets weigh nothing
            print("alpha 1 and no unlabelled text: trained on the labels alone, the teacher is not asked")
            logits = np.zeros((len(train), len(self.label_names)), np.float32)
        else:
            logits = self.transfer_logits(train)
        labels = np.full(len(train), UNLABELLED, np.int64)
        labels[labelled] = targets_for(info, train.select(labelled))[0]
        train_ds, rows = dataset(train, pack_targets(labels, logits), shuffle=True)
        validation = None
        if splits.validation is not None:
            targets, examples = targets_for(info, splits.validation)
            validation = dataset(examples, targets, shuffle=False)[0]
        return Prepared(train_ds, max(int(train_ds.cardinality()), 1), rows, validation_data=validation)

    def transfer_logits(self, train) -> np.ndarray:
        """The teacher's logits for the transfer set, part by part (`self.parts`: the transfer set, then each
        augmented copy), each part computed once and cached on its own."""
        parts = self.parts or [(0, len(train))]
        return np.concatenate([
            teacher_logits(self.teacher, train.texts[start:stop],
                           None if train.pairs is None else train.pairs[start:stop], cache_dir=self.cache_dir)
            for start, stop in parts])

    def build_model(self, backbone, config, label_names):
        from ptft_keras.tasks.distiller import DistillationStudent

        return DistillationStudent(backbone, label_names=label_names, temperature=self.temperature, alpha=self.alpha,
                                   soft_loss=self.soft_loss)

    def info_extra(self, config) -> dict:
        transfer = {"labelled": {"data": config.train, "rows": self.counts.get("labelled")}}
        if self.unlabelled:
            transfer["unlabelled"] = {"data": str(self.unlabelled), "rows": self.counts.get("unlabelled"),
                                      "column": self.unlabelled_column or config.text_column}
        if self.augmentation:
            transfer["augmented"] = {**self.augmentation_settings(), "rows": self.counts.get("augmented")}
        return {"distillation": {
            "teacher": self.teacher_dir, "teacher_metrics": self.teacher_metrics(), **self.student,
            "transfer_set": transfer, "temperature": self.temperature, "alpha": self.alpha,
            "soft_loss": self.soft_loss, "teacher_cache": None if self.cache_dir is None else str(self.cache_dir),
        }}

    def teacher_metrics(self) -> dict:
        """The teacher's own validation metrics (its metrics.json), when its directory has them."""
        import json

        path = Path(self.teacher[2].directory) / "metrics.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")).get("metrics", {})
        except (OSError, ValueError, AttributeError):
            return {}

    def score(self, model, tokenizer, info, splits: Splits, prepared: Prepared, history: dict) -> dict:
        from ptft_keras.jobs.report import task_report

        report = super().score(model, tokenizer, info, splits, prepared, history)
        if splits.validation is not None:
            targets, examples = targets_for(info, splits.validation)
            logits = teacher_logits(self.teacher, examples.texts, examples.pairs, cache_dir=self.cache_dir, log=None)
            scored = task_report(info.task, targets, logits, info.label_names)
            report["teacher"] = {"model": self.teacher_dir, "metrics": scored["metrics"]}
            student, teacher = report["metrics"].get("accuracy"), scored["metrics"].get("accuracy")
            if student is not None and teacher is not None:
                print(f"validation accuracy: student {student:.4f}, teacher {teacher:.4f}")
        return report
