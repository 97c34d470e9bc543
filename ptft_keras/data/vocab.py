"""Train a WordPiece vocabulary on a corpus (with the `tokenizers` library) and turn it into a Tokenizer.

The trainer normalizes and splits text with the same BERT rules our `Tokenizer` applies, so a
vocabulary trained here covers what the tokenizer will see.
"""
from __future__ import annotations

import os
from pathlib import Path

from ptft_keras.data.tokenizer import Tokenizer
from ptft_keras.errors import ConfigError, DataError

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _is_file(item) -> bool:
    if isinstance(item, os.PathLike):
        return True
    return isinstance(item, str) and "\n" not in item and len(item) < 4096 and os.path.isfile(item)


def _split_corpus(texts_or_files):
    """(texts, files): a path, a list of paths, or an iterable of texts (str or bytes)."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        texts_or_files = [texts_or_files]
    items = list(texts_or_files)
    files = [str(item) for item in items if _is_file(item)]
    if files and len(files) != len(items):
        raise ConfigError("texts_or_files mixes file paths and texts; pass one kind")
    for path in files:
        if not Path(path).is_file():
            raise DataError("the corpus file does not exist", path=path)
    texts = [] if files else [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in items]
    return texts, files


def train_wordpiece_vocabulary(texts_or_files, vocab_size: int = 30522, *, lowercase: bool = True,
                               strip_accents=None, tokenize_chinese_chars: bool = True, min_frequency: int = 2,
                               special_tokens=BERT_SPECIAL_TOKENS, limit_alphabet: int = 1000) -> list[str]:
    """Learn a WordPiece vocabulary (special tokens first, so [PAD] is id 0 by default).

    `texts_or_files`: an iterable of texts, a text file path, or a list of text file paths.
    The result has `vocab_size` tokens, or fewer when the corpus does not have enough material.

    Example:
        >>> vocab = train_wordpiece_vocabulary(["the cat sat", "the cats sat on the mat"] * 20, vocab_size=60)
        >>> vocab[:5], len(vocab) <= 60
        (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'], True)
    """
    from tokenizers import Tokenizer as _Trainee, models, normalizers, pre_tokenizers, trainers

    special_tokens = list(special_tokens)
    if vocab_size <= len(special_tokens):
        raise ConfigError(f"vocab_size={vocab_size} leaves no room beside the {len(special_tokens)} special tokens")
    unk = "[UNK]" if "[UNK]" in special_tokens else special_tokens[0]
    texts, files = _split_corpus(texts_or_files)
    if not files and not any(text.strip() for text in texts):
        raise DataError("the corpus is empty: there is no text to learn a vocabulary from", path="texts_or_files")
    trainee = _Trainee(models.WordPiece(unk_token=unk, max_input_chars_per_word=100))
    trainee.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
                                                    strip_accents=strip_accents, lowercase=lowercase)
    trainee.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                        special_tokens=special_tokens, limit_alphabet=limit_alphabet,
                                        continuing_subword_prefix="##")
    if files:
        trainee.train(files, trainer)
    else:
        trainee.train_from_iterator(texts, trainer, length=len(texts))
    vocabulary = trainee.get_vocab()
    return sorted(vocabulary, key=vocabulary.get)


def write_tokenizer(vocabulary, directory, **settings) -> Tokenizer:
    """Save `vocabulary` as a tokenizer directory (vocab.txt + transformers-loadable configs) and
    return the Tokenizer read back from it. `settings` are `Tokenizer.from_vocabulary` options.

    Example:
        >>> import tempfile
        >>> vocab = train_wordpiece_vocabulary(["the cat sat", "the cats sat on the mat"] * 20, vocab_size=60)
        >>> tok = write_tokenizer(vocab, tempfile.mkdtemp())
        >>> tok.tokenize(["The cats"]).to_list() == [[vocab.index("the"), vocab.index("cats")]]
        True
    """
    directory = Path(directory)
    Tokenizer.from_vocabulary(list(vocabulary), **settings).save_pretrained(directory)
    return Tokenizer.from_pretrained(directory)
