import pytest

from ptft_keras import cli


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out
    for required in cli.COMMANDS[command][2]:
        assert "--" + required.replace("_", "-") in out


def test_missing_required_flag_is_a_clear_error(capsys):
    assert cli.main(["pretrain", "--corpus", "x.txt"]) == 2
    assert "--output" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_readme_configuration_reference_is_current():
    from pathlib import Path

    from ptft_keras.jobs import config_reference

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index(config_reference.BEGIN) + len(config_reference.BEGIN) + 1
    end = readme.index(config_reference.END)
    assert readme[start:end] == config_reference.reference(), (
        "README's configuration reference is stale: run python -m ptft_keras.jobs.config_reference --write README.md"
    )


@pytest.mark.parametrize("argv", [["--help"], *[[command, "--help"] for command in sorted(cli.COMMANDS)]])
def test_help_loads_no_tensorflow_and_answers_at_once(argv):
    """`ptft --help` and `ptft COMMAND --help` in a fresh interpreter: no TensorFlow, Keras or NumPy-heavy job
    module is imported, and the process ends within a second (Python's own start-up included)."""
    import subprocess
    import sys
    import time

    probe = ("import sys\nfrom ptft_keras import cli\ntry:\n    cli.main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'keras_hub') if m in sys.modules))")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "LOADED []"
    assert "usage: ptft" in done.stdout and not done.stderr
    assert elapsed < 2.0, f"{argv}: {elapsed:.2f} s"  # under 1 s on an idle machine; slack for a busy CI
