"""The `ptft` command line: a thin layer that parses a job's config and calls the same function a notebook calls.

Each subcommand is a job: a flat config dataclass (flags generated from its fields, `--config YAML` to load
them from a file) and a `run(config)` function. Modules are imported only when their subcommand runs, so
`ptft --help` stays fast.

Example:
    $ ptft --help
    $ ptft finetune --help
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ptft_keras.config import add_arguments, from_args
from ptft_keras.errors import PtftError
from ptft_keras.jobs.commands import COMMANDS, config_class, register
from ptft_keras.jobs.quiet import LOG_LEVELS, quiet_tensorflow

__all__ = ["COMMANDS", "build_parser", "config_class", "main", "register"]


def _load(name: str):
    module_name, _, required, _ = COMMANDS[name]
    return importlib.import_module(module_name), config_class(name), required


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptft", allow_abbrev=False,
        description="Pretrain, then fine-tune BERT/DistilBERT encoders with TensorFlow and Keras 3.",
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--log-level", choices=sorted(LOG_LEVELS), default=None,
                        help="show TensorFlow's own logging from this level (default: its start-up chatter is hidden)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, _, required, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == command:  # only the chosen job's options are imported (never TensorFlow)
            add_arguments(p, config_class(name), required=required)
    return parser


def unknown_arguments(parser: argparse.ArgumentParser, command: str | None, unknown: list[str]) -> str:
    """The error for flags no command has, with the closest real flag where there is one (flags must be
    spelled out: `--text-colum` is not taken for `--text-column`)."""
    import difflib

    options = list(parser._option_string_actions)  # noqa: SLF001 - argparse keeps no public list
    if command:
        sub = next(a for a in parser._subparsers._group_actions if a.dest == "command")  # noqa: SLF001
        options += list(sub.choices[command]._option_string_actions)  # noqa: SLF001
    parts = []
    for arg in unknown:
        if not arg.startswith("-"):
            continue
        flag = arg.split("=", 1)[0]
        close = difflib.get_close_matches(flag, options, n=1, cutoff=0.6)
        parts.append(f"unknown option {flag}" + (f" (did you mean {close[0]}?)" if close else ""))
    if not parts:
        parts.append(f"unexpected argument(s): {' '.join(unknown)}")
    return "; ".join(parts) + (f"; see ptft {command} --help" if command else "; see ptft --help")


def _version() -> str:
    from ptft_keras.version import __version__

    return f"ptft_keras {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"{parser.prog}: error: {unknown_arguments(parser, args.command, unknown)}\n")
    if not args.command:
        parser.print_help()
        return 2
    module, config_cls, required = _load(args.command)
    try:
        quiet_tensorflow(args.log_level)
        config = from_args(config_cls, args, required=required)
        result = module.run(config)
    except PtftError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
