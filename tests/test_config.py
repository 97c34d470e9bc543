import argparse
from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from ptft_keras.config import add_arguments, from_args, from_dict, load_yaml, markdown_reference, option
from ptft_keras.errors import ConfigError


@dataclass
class Job:
    model: Optional[str] = option(None, "checkpoint")
    max_steps: int = option(100, "steps", positive=True)
    learning_rate: float = option(1e-4, "lr")
    strategy: Literal["default", "mirrored"] = option("default", "strategy")
    jit_compile: bool = option(False, "XLA")
    layers: list[int] = option((), "layers")


def _parse(argv, tmp_yaml=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser, Job, required=("model",))
    return from_args(Job, parser.parse_args(argv), required=("model",))


def test_flags_override_yaml(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("model: a\nmax_steps: 7\nlearning_rate: 3e-5\n")
    job = _parse(["--config", str(cfg), "--max-steps", "9", "--jit-compile", "--layers", "4", "5"])
    assert (job.model, job.max_steps, job.learning_rate, job.jit_compile) == ("a", 9, 3e-5, True)
    assert job.layers == [4, 5]


def test_types_are_coerced_and_lists_split():
    job = from_dict(Job, {"max_steps": "12", "layers": "1,2,3", "jit_compile": "yes"})
    assert job.max_steps == 12 and job.layers == [1, 2, 3] and job.jit_compile is True


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_step": 3}, "unknown configuration key 'max_step'"),
        ({"max_steps": "many"}, "max_steps"),
        ({"max_steps": 0}, "must be > 0"),
        ({"strategy": "tpu-ish"}, "strategy"),
        ({"learning_rate": "fast"}, "learning_rate"),
    ],
)
def test_bad_values_name_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Job, values)


def test_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: a\nmax_steps: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+"):
        load_yaml(Job, bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("modle: a\n")
    with pytest.raises(ConfigError, match="unknown.yaml: unknown configuration key 'modle'"):
        load_yaml(Job, unknown)


def test_required_flag_missing():
    with pytest.raises(ConfigError, match="--model"):
        _parse([])


def test_markdown_reference_lists_every_field():
    table = markdown_reference(Job)
    for flag in ("--model", "--max-steps", "--learning-rate", "--strategy", "--jit-compile", "--layers"):
        assert f"`{flag}`" in table
