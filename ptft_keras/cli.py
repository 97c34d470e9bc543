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

__all__ = ["COMMANDS", "build_parser", "config_class", "main", "register"]


def _load(name: str):
    module_name, _, required, _ = COMMANDS[name]
    return importlib.import_module(module_name), config_class(name), required


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptft",
        description="Pretrain, then fine-tune BERT/DistilBERT encoders with TensorFlow and Keras 3.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, _, required, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:  # only the chosen job's options are imported (never TensorFlow)
            add_arguments(p, config_class(name), required=required)
    return parser


def _version() -> str:
    from ptft_keras.version import __version__

    return f"ptft_keras {__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module, config_cls, required = _load(args.command)
    try:
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
