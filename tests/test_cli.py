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

    from ptft_keras import config_reference

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index(config_reference.BEGIN) + len(config_reference.BEGIN) + 1
    end = readme.index(config_reference.END)
    assert readme[start:end] == config_reference.reference(), (
        "README's configuration reference is stale: run python -m ptft_keras.config_reference --write README.md"
    )
