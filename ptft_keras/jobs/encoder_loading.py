"""What `ptft finetune --model ...` loads: the encoder (the skeleton calls it the backbone) and its tokenizer.

`load_finetune_encoder(checkpoint, config, splits)` is the one call `jobs.finetune.run_finetune` makes
(under the strategy's scope). `--model` is

* ``bilstm``: a fresh `BiLSTMEncoder` (random init, seeded by ``--seed``) on a WordPiece vocabulary of
  ``--vocab-size`` entries (default `DEFAULT_VOCAB_SIZE`) trained on the training texts
  (`data.vocab.train_wordpiece_vocabulary`, deterministic, so a resumed run rebuilds the same one), sized
  by ``--encoder-options 'embedding_dim=128,lstm_units=128,num_layers=1,dropout=0.1,pooling=max'``;
* a directory `BiLSTMEncoder.save_pretrained` wrote (``ptft pretrain --model bilstm`` writes
  ``OUTPUT/backbone``): the encoder with the tokenizer saved beside it;
* anything else: a transformer checkpoint (`Backbone.from_pretrained` + `Tokenizer.from_pretrained`).

For both BiLSTM cases, ``--word-vectors FILE`` (word2vec text or binary, or GloVe) writes the vectors of
the vocabulary entries the file knows into the embedding (`models.word_vectors`) and prints how many
were found; a fresh encoder's ``embedding_dim`` defaults to the vectors' dimension. Options for a
BiLSTM are an error with a transformer checkpoint.

Recurrent encoders want larger steps than BERT's: where ``--learning-rate`` is left at the generic
default, a BiLSTM run uses `CLASSIC_DEFAULTS` (1e-3). Measured on SST-2 (first 8,000 training rows, 3
epochs, random init, 128-dim embedding, 128 units, max pooling; benchmarks/classic_encoders.py): dev
accuracy 0.783 at 1e-3 against 0.509 at BERT's 1e-4, which has not left chance after 3 epochs.

Example:
    >>> from types import SimpleNamespace
    >>> texts = ["a fine film", "a dull film", "fine acting"] * 10
    >>> config = SimpleNamespace(model="bilstm", vocab_size=40, encoder_options="embedding_dim=8,lstm_units=4",
    ...                          word_vectors=None, precision="float32", allow_pickle=False, learning_rate=1e-4,
    ...                          text_normalization="none", sequence_length=None)
    >>> splits = SimpleNamespace(train=SimpleNamespace(texts=texts, pairs=None))
    >>> encoder, tokenizer, config = load_finetune_encoder("bilstm", config, splits)  # doctest: +ELLIPSIS
    new WordPiece vocabulary: ... entries trained on 30 training texts
    >>> type(encoder).__name__, encoder.vocabulary_size == tokenizer.vocab_size, config.learning_rate
    ('BiLSTMEncoder', True, 0.001)
"""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from ptft_keras.errors import ConfigError

DEFAULT_VOCAB_SIZE = 8000
#: options whose generic `FinetuneConfig` default is replaced for a BiLSTM (when left at that default)
CLASSIC_DEFAULTS = {"learning_rate": 1e-3}
GENERIC_LEARNING_RATE = 1e-4  # FinetuneConfig's default (checked by tests/jobs/test_encoder_loading.py)
#: the options that apply to BiLSTM encoders only, by flag
CLASSIC_OPTIONS = {"encoder_options": "--encoder-options", "vocab_size": "--vocab-size",
                   "word_vectors": "--word-vectors"}
#: options that apply to a fresh encoder only (a saved one has its vocabulary and sizes)
FRESH_OPTIONS = ("encoder_options", "vocab_size")


def load_finetune_encoder(checkpoint, config, splits):
    """`(encoder, tokenizer, config)` for fine-tuning `checkpoint` (see the module docstring).

    `config` comes back with the BiLSTM defaults (`CLASSIC_DEFAULTS`) where it held the generic ones.
    Call it under the strategy's scope (it creates the encoder's variables).
    """
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.bilstm import is_bilstm_directory
    from ptft_keras.models.encoders import is_classic, load_encoder

    dtype = None if config.precision == "float32" else config.precision
    fresh, saved = is_classic(checkpoint), is_bilstm_directory(checkpoint)
    check_classic_options(config, checkpoint, fresh=fresh, saved=saved)
    if not (fresh or saved):
        backbone = load_encoder(checkpoint, dtype=dtype, allow_pickle=config.allow_pickle)
        return backbone, Tokenizer.from_pretrained(checkpoint), config

    texts = training_texts(splits, getattr(config, "text_normalization", None)) if fresh else None
    encoder, tokenizer = classic_encoder(checkpoint, texts, vocab_size=config.vocab_size,
                                         encoder_options=config.encoder_options, word_vectors=config.word_vectors,
                                         dtype=dtype, sequence_length=config.sequence_length)
    return encoder, tokenizer, with_classic_defaults(config)


def classic_encoder(checkpoint, texts=None, *, vocab_size: int | None = None, encoder_options: str | None = None,
                    word_vectors=None, dtype=None, sequence_length: int | None = None):
    """`(encoder, tokenizer)` of a BiLSTM: fresh (``"bilstm"``: a vocabulary of `vocab_size` entries learnt
    from `texts`, sizes from `encoder_options`) or saved (a `save_pretrained` directory and its tokenizer),
    its embedding initialised from `word_vectors` (a file) when given. Creates variables: call it under
    the strategy's scope.

    Example:
        >>> encoder, tokenizer = classic_encoder("bilstm", ["a good film", "a bad film"] * 5, vocab_size=30,
        ...                                      encoder_options="lstm_units=4")  # doctest: +ELLIPSIS
        new WordPiece vocabulary: ... entries trained on 10 training texts
        >>> encoder.hidden_dim, encoder.vocabulary_size == tokenizer.vocab_size
        (8, True)
    """
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.models.encoders import is_classic, load_encoder, parse_encoder_options

    fresh = is_classic(checkpoint)
    if fresh:
        tokenizer = train_tokenizer(texts, vocab_size=vocab_size, sequence_length=sequence_length)
        sizes = parse_encoder_options(encoder_options, checkpoint)
    else:
        tokenizer, sizes = Tokenizer.from_pretrained(checkpoint), {}
    vectors = read_vectors(word_vectors, tokenizer) if word_vectors else None
    if vectors and fresh:
        sizes.setdefault("embedding_dim", vector_dimension(vectors))
    encoder = load_encoder(checkpoint, vocabulary_size=tokenizer.vocab_size, dtype=dtype, **sizes)
    if vectors is not None:
        set_vectors(encoder, tokenizer, vectors, word_vectors)
    return encoder, tokenizer


def check_classic_options(config, checkpoint, *, fresh: bool, saved: bool) -> None:
    """BiLSTM options given where they cannot apply: a ConfigError naming the flag and why."""
    given = [name for name in CLASSIC_OPTIONS if getattr(config, name, None) not in (None, "")]
    if not (fresh or saved) and given:
        raise ConfigError(f"{', '.join(CLASSIC_OPTIONS[n] for n in given)} apply to BiLSTM encoders (--model bilstm or "
                          f"a BiLSTM directory), not to the transformer checkpoint {checkpoint}")
    fixed = [CLASSIC_OPTIONS[n] for n in given if n in FRESH_OPTIONS]
    if saved and fixed:
        raise ConfigError(f"{', '.join(fixed)} apply to a fresh encoder (--model bilstm); {checkpoint} keeps the "
                          "vocabulary and sizes it was saved with")


def with_classic_defaults(config):
    """`config` with `CLASSIC_DEFAULTS` where it holds the generic defaults (a dataclass or a namespace).

    Example:
        >>> with_classic_defaults(SimpleNamespace(learning_rate=1e-4)).learning_rate
        0.001
        >>> with_classic_defaults(SimpleNamespace(learning_rate=3e-3)).learning_rate
        0.003
    """
    changes = {name: value for name, value in CLASSIC_DEFAULTS.items()
               if getattr(config, name) == generic_default(config, name)}
    if not changes:
        return config
    if dataclasses.is_dataclass(config):
        return dataclasses.replace(config, **changes)
    return SimpleNamespace(**{**vars(config), **changes})


def generic_default(config, name: str):
    """The default of field `name` in `config`'s dataclass (the generic FinetuneConfig one for a namespace)."""
    if dataclasses.is_dataclass(config):
        return {f.name: f.default for f in dataclasses.fields(config)}[name]
    return {"learning_rate": GENERIC_LEARNING_RATE}[name]


# ----------------------------------------------------------------------------------- vocabulary
def training_texts(splits, text_normalization: str | None = None) -> list[str]:
    """The texts of the training rows (both texts of pairs; a CoNLL sentence's words joined by spaces),
    normalised as training will (`--text-normalization`): what a fresh vocabulary is learnt from.

    Example:
        >>> rows = SimpleNamespace(texts=["A<br />b", "c"], pairs=["d", "e"])
        >>> training_texts(SimpleNamespace(train=rows), "html_breaks")
        ['A b', 'c', 'd', 'e']
    """
    train = splits.train
    if hasattr(train, "texts"):
        texts = list(train.texts) + list(train.pairs or [])
    else:  # token classification: sentences of words
        texts = [" ".join(words) for words in train.words]
    return normalized(texts, text_normalization)


def normalized(texts: list[str], mode: str | None) -> list[str]:
    """`texts` rewritten by the `data.text_rewrites` mode (unchanged for None / "none")."""
    from ptft_keras.data.text_rewrites import check_mode, normalize_text

    if check_mode(mode) is None:
        return texts
    return [text.decode("utf-8") for text in normalize_text(texts, mode).numpy().tolist()]


def train_tokenizer(texts, *, vocab_size: int | None = None, sequence_length: int | None = None):
    """A `Tokenizer` on a WordPiece vocabulary of `vocab_size` (default `DEFAULT_VOCAB_SIZE`) entries
    learnt from `texts` (deterministic: the same texts give the same vocabulary in every process)."""
    from ptft_keras.data.tokenizer import Tokenizer
    from ptft_keras.data.vocab import train_wordpiece_vocabulary

    texts = list(texts or [])
    if not texts:
        raise ConfigError("a fresh BiLSTM needs texts to learn its WordPiece vocabulary from")
    vocabulary = train_wordpiece_vocabulary(texts, vocab_size=vocab_size or DEFAULT_VOCAB_SIZE)
    print(f"new WordPiece vocabulary: {len(vocabulary)} entries trained on {len(texts)} training texts")
    # No position embeddings: the limit only bounds what --sequence-length may ask for.
    return Tokenizer.from_vocabulary(vocabulary, model_max_length=max(512, sequence_length or 0))


# --------------------------------------------------------------------------------- word vectors
def read_vectors(path, tokenizer) -> dict:
    """The vectors of `path` for the words of the tokenizer's vocabulary (any case)."""
    from ptft_keras.models.word_vectors import read_word_vectors

    return read_word_vectors(path, words=tokenizer.vocabulary)


def vector_dimension(vectors: dict) -> int:
    return int(len(next(iter(vectors.values()))))


def set_vectors(encoder, tokenizer, vectors: dict, path) -> int:
    """Write `vectors` into the encoder's embedding; print and return how many vocabulary entries were found."""
    from ptft_keras.models.word_vectors import set_embeddings

    found = set_embeddings(encoder, tokenizer.vocabulary, vectors) if vectors else 0
    share = found / max(tokenizer.vocab_size, 1)
    print(f"word vectors: {found} of {tokenizer.vocab_size} vocabulary entries ({share:.0%}) found in {path}; "
          "the others keep their initial rows")
    return found
