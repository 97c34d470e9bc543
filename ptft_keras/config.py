"""Typed configuration: flat dataclasses, loadable from YAML, every field overridable from the CLI.

Each job (pretraining, fine-tuning, ...) has one flat dataclass. Flags are generated from the fields
(`max_steps` -> `--max-steps`), so the CLI, the YAML file and the Python API use the same names.

Example:
    >>> from dataclasses import dataclass
    >>> from ptft_keras.config import option, from_dict
    >>> @dataclass
    ... class Demo:
    ...     epochs: int = option(3, "passes over the data")
    ...     name: str = option("run", "a label")
    >>> from_dict(Demo, {"epochs": "5"})
    Demo(epochs=5, name='run')
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from ptft_keras.errors import ConfigError


def option(default: Any, help: str, *, choices=None, positive: bool = False):  # noqa: A002 - mirrors argparse
    """A dataclass field with help text (shown in `--help` and the generated configuration reference)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "positive": positive})


def _unwrap_optional(tp):
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _choices(field: dataclasses.Field, tp) -> tuple | None:
    base, _ = _unwrap_optional(tp)
    if get_origin(base) is Literal:
        return get_args(base)
    return field.metadata.get("choices")


def coerce(value: Any, tp, *, name: str, source: str | None = None):
    """Convert `value` (from YAML or a flag) to the annotated type `tp`, or raise ConfigError naming the field."""
    base, optional = _unwrap_optional(tp)
    where = f" (in {source})" if source else ""
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "")):
        if optional:
            return None
        raise ConfigError(f"{name}{where}: a value is required")
    try:
        if get_origin(base) is Literal:
            allowed = get_args(base)
            kind = type(allowed[0])
            v = kind(value)
            if v not in allowed:
                raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
            return v
        if base is bool:
            if isinstance(value, bool):
                return value
            s = str(value).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError("must be true or false")
        if base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("must be an integer")
            return int(str(value).replace("_", "")) if isinstance(value, str) else int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
        if get_origin(base) in (list, tuple):
            (item_tp, *_) = get_args(base) or (str,)
            items = value.split(",") if isinstance(value, str) else list(value)
            return [coerce(v.strip() if isinstance(v, str) else v, item_tp, name=name, source=source) for v in items]
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}{where}: invalid value {value!r}: {exc}") from None


def from_dict(cls, values: dict, *, source: str | None = None):
    """Build dataclass `cls` from a mapping, coercing types; unknown keys are an error that lists the valid ones."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _field_types(cls)
    kwargs = {}
    for key, value in (values or {}).items():
        name = key.replace("-", "_")
        if name not in fields:
            where = f"{source}: " if source else ""
            raise ConfigError(f"{where}unknown configuration key {key!r}; valid keys: {', '.join(sorted(fields))}")
        kwargs[name] = coerce(value, hints[name], name=name, source=source)
    obj = cls(**kwargs)
    validate(obj, source=source)
    return obj


def validate(obj, *, source: str | None = None) -> None:
    """Check choices and positivity constraints declared with `option(...)`."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        choices = _choices(f, hints[f.name])
        where = f" (in {source})" if source else ""
        if choices and value not in choices:
            raise ConfigError(f"{f.name}{where}: {value!r} is not one of {', '.join(map(str, choices))}")
        if f.metadata.get("positive") and value <= 0:
            raise ConfigError(f"{f.name}{where}: must be > 0, got {value!r}")


def load_yaml(cls, path):
    """Load a dataclass config from a YAML file (a flat mapping of field names to values)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got {type(data).__name__}")
    return from_dict(cls, data, source=str(path))


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls, *, required: tuple[str, ...] = ()) -> None:
    """Add one flag per dataclass field. Defaults are suppressed so that only given flags override YAML."""
    hints = _field_types(cls)
    parser.add_argument("--config", metavar="YAML", help="YAML file with any of the options below; flags override it")
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        base, _ = _unwrap_optional(tp)
        help_text = f.metadata.get("help", "")
        default = _default(f)
        if f.name in required:
            help_text += " (required)"
        else:
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text.replace("%", "%%")}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(base) in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["metavar"] = f.name.upper()
        else:
            kwargs["metavar"] = f.name.upper()
            choices = _choices(f, tp)
            if choices:
                kwargs["choices"] = [str(c) for c in choices] if all(isinstance(c, str) for c in choices) else None
                kwargs["metavar"] = "{" + ",".join(map(str, choices)) + "}"
        parser.add_argument(flag_name(f.name), **kwargs)


def from_args(cls, args: argparse.Namespace, *, required: tuple[str, ...] = ()):
    """Merge a `--config` YAML file (if any) with the explicitly given flags, then check required fields."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    base = {}
    config_path = getattr(args, "config", None)
    if config_path:
        base = to_dict(load_yaml(cls, config_path))
    base.update(given)
    obj = from_dict(cls, base, source=config_path)
    missing = [flag_name(n) for n in required if getattr(obj, n) in (None, "")]
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join(missing)} (as flags or in --config YAML)")
    return obj


def markdown_reference(cls) -> str:
    """A Markdown table of the fields of `cls` (used to generate the README's configuration reference)."""
    hints = _field_types(cls)
    rows = ["| option | flag | type | default | meaning |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        base, optional = _unwrap_optional(tp)
        choices = _choices(f, tp)
        tname = " \\| ".join(map(str, choices)) if choices else getattr(base, "__name__", str(base))
        if optional:
            tname += " or null"
        default = _default(f)
        rows.append(f"| `{f.name}` | `{flag_name(f.name)}` | {tname} | `{default}` | {f.metadata.get('help', '')} |")
    return "\n".join(rows)


def print_error_and_exit(exc: Exception) -> typing.NoReturn:
    print(f"error: {exc}", file=sys.stderr)
    raise SystemExit(2)
