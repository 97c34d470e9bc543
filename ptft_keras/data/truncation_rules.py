"""How texts longer than the sequence length are fitted, as rules: the strategy names, the token budget,
`auto` made concrete, and the description printed and recorded. Plain Python (no TensorFlow), so job
configs and `ptft --help` can use them; the tensor work is in `data.truncation`.

Example:
    >>> resolve_truncation("auto", content_budget(512))
    ('head_tail', 128)
"""
from __future__ import annotations

from ptft_keras.errors import ConfigError

TRUNCATIONS = ("head", "tail", "head_tail", "windows")
DEFAULT_TRUNCATION = "head"
AUTO = "auto"
DEFAULT_HEAD_TOKENS = 128
LONG_TEXT_BUDGET = 254  # content_budget(256): from here on, `auto` keeps the end of a text too
WINDOW_POOLINGS = ("mean", "max")
NUM_SPECIAL_TOKENS = 2  # [CLS] text [SEP]


def content_budget(sequence_length: int, num_special_tokens: int = NUM_SPECIAL_TOKENS) -> int:
    """Tokens of text that fit in `sequence_length` once the special tokens are added.

    Example:
        >>> content_budget(128)
        126
    """
    budget = int(sequence_length) - num_special_tokens
    if budget < 1:
        raise ConfigError(f"sequence_length {sequence_length} leaves no room for text; use at least {num_special_tokens + 1}")
    return budget


def resolve_truncation(strategy: str, budget: int, *, pairs: bool = False, head_tokens: int | None = None):
    """``(strategy, head_tokens)`` with ``auto`` and ``head_tokens=None`` made concrete for a budget of
    `budget` text tokens (`content_budget`).

    ``auto`` is ``head_tail`` for single texts when the budget is a long-document one (a sequence length
    of 256 or more): on IMDb reviews, keeping the end as well as the start beat head truncation at 512
    tokens (dev accuracy 0.900 against 0.888) and at 256 (0.890 against 0.858; benchmarks/RESULTS.md), as
    Sun et al. (2019) found. Below 256 tokens, and for text pairs (cut longest-first by the tokenizer),
    ``auto`` is ``head``: the sequence length there is chosen for short texts, and nothing was measured
    in favour of cutting their middle. ``head_tokens=None`` is 128 (Sun et al.'s choice) from 256 tokens
    on, and half the budget below.

    Example:
        >>> resolve_truncation("auto", 510)
        ('head_tail', 128)
        >>> resolve_truncation("auto", 62), resolve_truncation("auto", 510, pairs=True)
        (('head', 31), ('head', 128))
        >>> resolve_truncation("head_tail", 62)
        ('head_tail', 31)
    """
    if strategy == AUTO:
        strategy = "head_tail" if budget >= LONG_TEXT_BUDGET and not pairs else "head"
    if head_tokens is None:
        head_tokens = DEFAULT_HEAD_TOKENS if budget >= LONG_TEXT_BUDGET else max(budget // 2, 1)
    return strategy, int(head_tokens)


def describe_truncation(strategy: str, budget: int, *, head_tokens: int | None = DEFAULT_HEAD_TOKENS,
                        window_stride: int | None = None, window_pooling: str = "mean") -> str:
    """What `strategy` does to texts over `budget` text tokens, in words (training's log, the model card).

    Example:
        >>> describe_truncation("head_tail", 510, head_tokens=128)
        'texts over 510 tokens keep their first 128 and last 382'
    """
    what = {
        "head": f"keep their first {budget}",
        "tail": f"keep their last {budget}",
        "head_tail": f"keep their first {head_tokens} and last {budget - (head_tokens or 0)}",
        "windows": f"are split into windows {window_stride or max(budget // 2, 1)} tokens apart, "
                   f"logits pooled by {window_pooling}",
    }[strategy]
    return f"texts over {budget} tokens {what}"


def check_truncation(strategy: str, max_tokens: int, *, head_tokens: int = DEFAULT_HEAD_TOKENS, stride=None) -> None:
    """Raise ConfigError when a strategy's settings cannot work with a budget of `max_tokens` text tokens.

    Example:
        >>> check_truncation("head_tail", 510, head_tokens=128)
    """
    if strategy not in TRUNCATIONS:
        raise ConfigError(f"truncation: {strategy!r} is not one of {', '.join(TRUNCATIONS)}")
    if strategy == "head_tail" and not 0 < head_tokens < max_tokens:
        raise ConfigError(
            f"head_tokens: {head_tokens} must be between 1 and {max_tokens - 1} (the sequence length minus the "
            f"special tokens, {max_tokens}, minus one) so that some tail is kept; lower --head-tokens or raise "
            "--sequence-length"
        )
    if strategy == "windows" and stride is not None and not 0 < stride <= max_tokens:
        raise ConfigError(
            f"window_stride: {stride} must be between 1 and the window size {max_tokens} (the sequence length "
            "minus the special tokens), or windows would skip tokens"
        )
