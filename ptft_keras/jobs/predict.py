"""`ptft predict`: run a fine-tuned model over a file and write its predictions.

The model directory's task kind (`jobs.kinds`) reads the file and writes the predictions:

- sequence tasks (`jobs.sequence_kind`): a CSV/TSV/JSONL file comes back in its own format with every
  input column plus ``prediction`` and ``score``; a plain-text file (one text per line) gives JSON Lines;
- token classification (`jobs.token_kind`): CoNLL gets a predicted-tag column, plain text (one sentence a
  line) gives JSON Lines of words and tags, CSV/TSV/JSONL a ``prediction`` column of tags; the job says
  which reading it used (`--data-format` to choose).

The output's extension must agree with the format written (`preds.tsv` for a TSV input, `.jsonl` for
text): a mismatch is an error before anything runs. Texts are prepared exactly as in training.

Example:
    $ ptft predict --model runs/sst2 --data reviews.tsv --output predictions.tsv

    >>> from ptft_keras.jobs.predict import predict
    >>> predict("runs/sst2", ["a gripping film", "dull"])["prediction"]  # doctest: +SKIP
    ['1', '0']
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ptft_keras.config import option
from ptft_keras.jobs.kinds import kind_for

DEFAULT_BATCH_SIZE = 64
DATA_FORMATS = ("auto", "conll", "text", "columns")


@dataclass
class PredictConfig:
    model: Optional[str] = option(None, "fine-tuned model directory (the --output of ptft finetune)")
    data: Optional[str] = option(None, "CSV, TSV, JSONL or plain-text file of texts to predict (or CoNLL for "
                                 "token classification)")
    output: Optional[str] = option(None, "file to write: the input's format with prediction and score columns added "
                                   "(JSON Lines for plain text)")
    text_column: Optional[str] = option(None, "column holding the text (default: the one used in training)")
    text_pair_column: Optional[str] = option(None, "column holding the second text of pairs (default: as in training)")
    sequence_length: Optional[int] = option(None, "tokens per sequence (default: the length used in training)", positive=True)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "texts per prediction batch", positive=True)
    threshold: Optional[float] = option(None, "multilabel: predict a label when its probability is at least this "
                                        "(default: the threshold used in training, 0.5)")
    data_format: str = option("auto", "token classification: read --data as CoNLL, text (one sentence a line) or "
                              "columns (CSV/TSV/JSONL); auto: by what the file is", choices=DATA_FORMATS)


def predict(model, texts, pairs=None, *, sequence_length: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
            threshold: float | None = None) -> dict:
    """Predict `texts` (and `pairs`) with a fine-tuned sequence model directory (or a loaded triple).

    Returns ``{"prediction": [...], "score": [...] or None, "ids": ..., "logits": ...}``.

    Example:
        >>> predict("runs/sst2", ["a gripping film"])["prediction"]  # doctest: +SKIP
        ['1']
    """
    from ptft_keras.jobs.sequence_kind import predict_texts
    from ptft_keras.jobs.task_kind import load, with_sequence_length

    model, tokenizer, info = load(model)
    return predict_texts((model, tokenizer, with_sequence_length(info, sequence_length)), texts, pairs,
                         batch_size=batch_size, threshold=threshold)


def run(config: PredictConfig) -> int:
    import dataclasses
    import tempfile

    from ptft_keras import storage
    from ptft_keras.jobs.task_kind import load, with_sequence_length

    model, tokenizer, info = load(config.model)
    loaded = (model, tokenizer, with_sequence_length(info, config.sequence_length))
    remote_output = storage.is_remote(config.output or "")
    if not (storage.is_remote(config.data or "") or remote_output):
        print(kind_for(info.task).predict(loaded, config))
        return 0
    # gs://...: the input fetched, the predictions written locally and uploaded whole (the readers and the
    # writer keep each row's line and layout, which needs local files)
    with tempfile.TemporaryDirectory(prefix="ptft-predict-") as scratch:
        output = config.output
        local = dataclasses.replace(
            config, data=str(storage.local_copy(config.data, "data")) if config.data else config.data,
            output=str(Path(scratch) / output.rstrip("/").rsplit("/", 1)[-1]) if remote_output else output)
        message = kind_for(info.task).predict(loaded, local)
        if remote_output:
            storage.check_scheme(output, "output")
            storage.makedirs(output.rsplit("/", 1)[0])
            storage.write_file(Path(local.output), output)
            message = message.replace(local.output, output)
    print(message)
    return 0
