"""Word vectors for a classic encoder's embedding: train word2vec with gensim, or read pretrained files.

* `wordpiece_sentences(tokenizer, texts)`: texts -> lists of our WordPiece tokens (what the
  encoder's embedding rows are), the corpus word2vec trains on.
* `train_word2vec(sentences, ...)`: gensim skip-gram (``sg=True``) or CBOW, reproducible with `seed`
  (one worker, a stable hash). `heldout_word2vec_loss` scores held-out sentences with the same
  negative-sampling objective.
* `read_word_vectors(path, format="auto", words=None)`: word2vec text (a ``count dim`` header),
  word2vec binary, or GloVe text (no header); with `words` only those are kept, so a large file
  is streamed instead of held in memory (binary files are read whole by gensim).
* `embedding_matrix(vocabulary, vectors, base)` / `set_embeddings(encoder, vocabulary, vectors)`: put
  the vectors into the rows of the tokens they know (exact, then ignoring case); other rows keep
  their initial values. Both return how many vocabulary entries were found.

gensim is imported only when word2vec is trained or a binary file is read (``pip install gensim``).

Example:
    >>> import numpy as np
    >>> vectors = {"cat": np.ones(4, "float32"), "Dog": np.full(4, 2.0, "float32")}
    >>> matrix, found = embedding_matrix(["[PAD]", "cat", "dog", "##s"], vectors, base=np.zeros((4, 4), "float32"))
    >>> found, matrix[:, 0].tolist()
    (2, [0.0, 1.0, 2.0, 0.0])
"""
from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import keras
import numpy as np

from ptft_keras.errors import ConfigError, DataError

FORMATS = ("auto", "word2vec_text", "word2vec_binary", "glove")


def stable_hash(text: str) -> int:
    """A hash that does not change between Python processes (gensim's default, `hash`, does)."""
    return zlib.crc32(text.encode("utf-8"))


def _gensim_word2vec():
    try:
        from gensim.models import Word2Vec
    except ImportError:
        raise ConfigError("word2vec needs gensim: pip install gensim") from None
    return Word2Vec


# --- training -----------------------------------------------------------------------------------
def wordpiece_sentences(tokenizer, texts: Sequence[str], *, batch_size: int = 1024) -> list[list[str]]:
    """Each text as the list of its WordPiece tokens (no [CLS]/[SEP]), as `tokenizer` splits it.

    Example:
        >>> from ptft_keras.data.tokenizer import Tokenizer
        >>> tokenizer = Tokenizer.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s"])
        >>> wordpiece_sentences(tokenizer, ["The cats", "the dog"])
        [['the', 'cat', '##s'], ['the', '[UNK]']]
    """
    texts = list(texts)
    sentences = []
    for start in range(0, len(texts), batch_size):
        for ids in tokenizer.tokenize(texts[start:start + batch_size]).to_list():
            sentences.append([tokenizer.vocabulary[i] for i in ids])
    return sentences


def train_word2vec(sentences: Iterable[Sequence[str]], *, vector_size: int = 100, skip_gram: bool = True,
                   window: int = 5, negative: int = 5, min_count: int = 1, epochs: int = 5, sample: float = 1e-3,
                   learning_rate: float = 0.025, seed: int = 0):
    """A gensim `Word2Vec` trained on token lists with negative sampling; the same seed gives the same vectors.

    Runs with one worker thread (gensim is only reproducible so). Its vectors are ``model.wv``.

    Example:
        >>> sentences = [["the", "cat", "sat"], ["the", "dog", "sat"]] * 50
        >>> model = train_word2vec(sentences, vector_size=8, epochs=2, seed=1)
        >>> model.wv["cat"].shape, np.array_equal(model.wv["cat"], train_word2vec(sentences, vector_size=8,
        ...                                                                      epochs=2, seed=1).wv["cat"])
        ((8,), True)
    """
    sentences = [list(sentence) for sentence in sentences if len(sentence)]
    if not sentences:
        raise DataError("word2vec has no text to train on: every sentence is empty", field="texts")
    word2vec = _gensim_word2vec()
    model = word2vec(vector_size=int(vector_size), sg=int(bool(skip_gram)), window=int(window), hs=0,
                     negative=int(negative), min_count=int(min_count), sample=sample, alpha=learning_rate,
                     seed=int(seed), workers=1, hashfxn=stable_hash)
    model.build_vocab(sentences)
    if not len(model.wv):
        raise DataError(f"no token occurs min_count={min_count} times; lower min_count or give more text",
                        field="texts")
    model.train(sentences, total_examples=len(sentences), epochs=int(epochs))
    return model


def heldout_word2vec_loss(model, sentences: Iterable[Sequence[str]], *, seed: int = 0,
                          max_pairs: int = 200_000) -> dict:
    """Mean word2vec negative-sampling loss on held-out sentences: ``{"loss", "pairs"}``.

    For each (center, context) pair in the model's `window` (both known to the model):
    ``-log s(u_target . h) - sum over k negatives of log s(-u_neg . h)``, where `h` is the center
    word's vector (skip-gram: target = each context word) or the mean of the context vectors
    (CBOW: target = the center word), `u` the output vectors and the `negative` negatives are
    drawn from the model's unigram^0.75 table with `seed`. Lower is better; an untrained model
    scores ``(1 + negative) * log 2``. At most `max_pairs` pairs are scored.
    """
    words, index = model.wv.index_to_key, model.wv.key_to_index
    inputs, outputs = np.asarray(model.wv.vectors, "float64"), np.asarray(model.syn1neg, "float64")
    rng = np.random.default_rng(seed)
    counts = np.array([model.wv.get_vecattr(w, "count") for w in words], "float64") ** model.ns_exponent
    noise = counts / counts.sum()
    hidden, targets = [], []
    for sentence in sentences:
        ids = [index[token] for token in sentence if token in index]
        for position, center in enumerate(ids):
            context = ids[max(0, position - model.window):position] + ids[position + 1:position + 1 + model.window]
            if not context:
                continue
            if model.sg:
                hidden.extend([inputs[center]] * len(context))
                targets.extend(context)
            else:
                hidden.append(inputs[context].mean(axis=0))
                targets.append(center)
        if len(targets) >= max_pairs:
            break
    if not targets:
        raise DataError("no held-out word pair the word2vec model knows; give more held-out text", field="heldout")
    hidden, targets = np.asarray(hidden[:max_pairs]), np.asarray(targets[:max_pairs])
    negatives = rng.choice(len(words), size=(len(targets), model.negative), p=noise)
    positive = np.einsum("pd,pd->p", hidden, outputs[targets])
    negative = np.einsum("pd,pkd->pk", hidden, outputs[negatives])
    losses = np.logaddexp(0.0, -positive) + np.logaddexp(0.0, negative).sum(axis=1)
    return {"loss": float(losses.mean()), "pairs": int(len(targets))}


# --- pretrained files ---------------------------------------------------------------------------
def read_word_vectors(path, format: str = "auto", *, words: Iterable[str] | None = None,
                      limit: int | None = None) -> dict[str, np.ndarray]:
    """``{word: float32 vector}`` from a word2vec text / word2vec binary / GloVe text file.

    `format` ``"auto"`` takes ``.bin`` files as word2vec binary, a first line of two integers as a
    word2vec text header, anything else as GloVe. `words` (optional) keeps only the words equal to
    one of them ignoring case (what `embedding_matrix` can use), so a large text file is streamed
    rather than held; `limit` reads at most that many vectors (files list frequent words first).
    A GloVe word may contain spaces (glove.840B): the last `dim` fields are the vector.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "glove.txt"
        >>> _ = path.write_text("the 0.1 0.2\\ncat 0.3 0.4\\n")
        >>> {word: vector.tolist() for word, vector in read_word_vectors(path, words=["cat"]).items()}
        {'cat': [0.30000001192092896, 0.4000000059604645]}
    """
    path = Path(path)
    if format not in FORMATS:
        raise ConfigError(f"unknown word-vector format {format!r}; choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise DataError("no such word-vector file", path=path)
    if format == "auto":
        format = "word2vec_binary" if path.suffix == ".bin" else _text_format(path)
    wanted = None if words is None else {word.lower() for word in words}
    if format == "word2vec_binary":
        return _read_binary(path, wanted, limit)
    return _read_text(path, header=format == "word2vec_text", wanted=wanted, limit=limit)


def _text_format(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        fields = file.readline().split()
    return "word2vec_text" if len(fields) == 2 and all(f.isdigit() for f in fields) else "glove"


def _read_text(path: Path, *, header: bool, wanted, limit) -> dict[str, np.ndarray]:
    vectors, dim = {}, None
    with open(path, encoding="utf-8", errors="replace") as file:
        if header:
            fields = file.readline().split()
            if len(fields) != 2 or not all(f.isdigit() for f in fields):
                raise DataError("a word2vec text file starts with a line 'count dim'", path=path, line=1)
            dim = int(fields[1])
        for line_number, line in enumerate(file, start=2 if header else 1):
            if limit is not None and line_number - header > limit:
                break
            fields = line.rstrip("\n\r").rstrip(" ").split(" ")
            if len(fields) < 2:
                continue
            if dim is None:
                dim = len(fields) - 1
            word = " ".join(fields[:-dim])
            if len(fields) <= dim or not word:
                raise DataError(f"expected a word and {dim} numbers, got {len(fields)} fields", path=path,
                                line=line_number)
            if wanted is not None and word.lower() not in wanted:
                continue
            try:
                vectors[word] = np.asarray(fields[-dim:], dtype="float32")
            except ValueError:
                raise DataError("a vector field is not a number", path=path, line=line_number) from None
    if not vectors and wanted is None:
        raise DataError("the word-vector file holds no vectors", path=path)
    return vectors


def _read_binary(path: Path, wanted, limit) -> dict[str, np.ndarray]:
    try:
        from gensim.models import KeyedVectors
    except ImportError:
        raise ConfigError("reading word2vec binary files needs gensim: pip install gensim") from None
    try:
        keyed = KeyedVectors.load_word2vec_format(str(path), binary=True, limit=limit)
    except Exception as error:  # gensim raises ValueError, EOFError, UnicodeDecodeError for bad files
        raise DataError(f"not a word2vec binary file ({type(error).__name__}: {error})", path=path) from None
    return {word: np.asarray(keyed.vectors[i], "float32") for i, word in enumerate(keyed.index_to_key)
            if wanted is None or word.lower() in wanted}


# --- into an embedding ----------------------------------------------------------------------------
def embedding_matrix(vocabulary: Sequence[str], vectors: Mapping[str, np.ndarray], base: np.ndarray):
    """``(matrix, found)``: `base` (one row per vocabulary entry) with the rows of tokens found in
    `vectors` replaced by their vectors: an exact match, else any spelling of the word that is
    equal lower-cased (the first in `vectors`)."""
    matrix = np.array(base, dtype="float32", copy=True)
    if matrix.shape[0] != len(vocabulary):
        raise ConfigError(f"the embedding has {matrix.shape[0]} rows for a vocabulary of {len(vocabulary)}")
    lowered = {}
    for word in vectors:  # the first spelling of a word wins (files list frequent words first)
        lowered.setdefault(word.lower(), word)
    found = 0
    for row, token in enumerate(vocabulary):
        word = token if token in vectors else lowered.get(token.lower())
        if word is None:
            continue
        vector = vectors[word]
        if np.shape(vector) != matrix.shape[1:]:
            raise ConfigError(
                f"the word vectors are {np.shape(vector)[-1]}-dimensional and the embedding {matrix.shape[1]}: "
                f"build the encoder with embedding_dim={np.shape(vector)[-1]}"
            )
        matrix[row] = vector
        found += 1
    return matrix, found


def set_embeddings(encoder, vocabulary: Sequence[str], vectors: Mapping[str, np.ndarray]) -> int:
    """Write `vectors` into `encoder.token_embedding` for the tokens of `vocabulary` they know;
    return how many vocabulary entries were found (the other rows keep their values).

    Example:
        >>> from ptft_keras.models.bilstm import BiLSTMEncoder
        >>> encoder = BiLSTMEncoder(vocabulary_size=3, embedding_dim=2, lstm_units=2)
        >>> set_embeddings(encoder, ["[PAD]", "cat", "dog"], {"cat": np.array([0.5, 0.5])})
        1
        >>> keras.ops.convert_to_numpy(encoder.token_embedding.embeddings)[1].tolist()
        [0.5, 0.5]
    """
    variable = encoder.token_embedding.embeddings
    matrix, found = embedding_matrix(vocabulary, vectors, keras.ops.convert_to_numpy(variable))
    variable.assign(matrix.astype(variable.dtype))
    return found
