"""Every notebook in notebooks/ runs top to bottom, on tiny settings, the way a fresh Colab runtime runs it.

Colab: the notebook opens from its badge in a runtime without ptft_keras, and *Run all* must work with
no edit, so the first code cell installs ptft_keras. Here each notebook runs in a fresh virtual
environment that lacks ptft_keras but sees this environment's other packages (a ``.pth`` line: no
TensorFlow download), in a copy of the checkout; the kernel starts in the copy's ``notebooks/``, as
Jupyter started in a clone does, so the install cell really pip-installs that checkout (and with it the
``ptft`` command the notebooks call). Its other sources (``PTFT_PACKAGE``, the GitHub repository of the
badges) are checked on the cell's code with pip replaced by a stub.

Like papermill: a cell setting the tiny values is inserted after the cell tagged ``parameters``.
Each value must override a name that cell assigns, so a renamed parameter fails here instead of
silently running the notebook at full size. Outputs go to the copy's ``notebooks/`` directory.
"""
import os
import re
import shutil
import site
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: The GitHub repository the Colab badges open, and the install cell's last-resort source.
REPOSITORY = "ptft-keras/ptft_keras"
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/{repository}/blob/main/notebooks/{name})")

# notebook -> tiny parameter values; paths are relative to the kernel's working directory
TINY = {
    "01_quickstart.ipynb": {"MAX_TRAIN_EXAMPLES": 32, "EPOCHS": 2, "BATCH_SIZE": 32, "SEQUENCE_LENGTH": 32},
    "02_pretraining.ipynb": {"VOCAB_SIZE": 600, "MAX_STEPS": 4, "BATCH_SIZE": 8, "SEQUENCE_LENGTH": 32,
                             "FINETUNE_EPOCHS": 1, "FINETUNE_MAX_TRAIN_EXAMPLES": 48,
                             "MAX_CORPUS_SENTENCES": 600},
    "03_tpu_and_distribution.ipynb": {"STEPS": 2, "GLOBAL_BATCH_SIZE": 8, "SEQUENCE_LENGTH": 32},
    "04_long_documents.ipynb": {"RANDOM_TINY_BACKBONE": True, "TRAIN_DOCUMENTS": 16, "EPOCHS": 1,
                                "SEQUENCE_LENGTH": 64, "BATCH_SIZE": 8},
}


def parameters_cell(notebook) -> int:
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def with_parameters(notebook, values: dict):
    """The notebook with a cell assigning `values` inserted after its parameters cell."""
    index = parameters_cell(notebook)
    source = notebook.cells[index].source
    unknown = [name for name in values if not re.search(rf"^{name}\s*=", source, re.MULTILINE)]
    assert not unknown, f"not parameters of the notebook: {unknown}"
    injected = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in values.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, injected)
    return notebook


def install_cell(notebook) -> str:
    return next(cell for cell in notebook.cells if cell.cell_type == "code").source


def test_every_notebook_has_tiny_settings():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_is_written_for_colab(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source == BADGE.format(repository=REPOSITORY, name=name), "a Colab badge first"
    source = install_cell(notebook)
    assert 'find_spec("ptft_keras") is None' in source and "pip" in source
    assert f'REPOSITORY = "https://github.com/{REPOSITORY}"' in source, "installs from the repository the badge opens"
    first = install_cell(nbformat.read(NOTEBOOKS / sorted(TINY)[0], as_version=4))
    assert source == first, "every notebook has the same install cell"
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it cleared"


def run_install_cell(tmp_path, monkeypatch, *, returncode=0):
    """Run the install cell's code with ptft_keras missing and pip stubbed; the pip commands it ran."""
    import importlib.util

    commands = []

    def fake_run(command, *args, **kwargs):
        commands.append(command)
        return types.SimpleNamespace(returncode=returncode)

    monkeypatch.setattr(subprocess, "run", fake_run)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ptft_keras" else real_find_spec(name, *a))
    monkeypatch.chdir(tmp_path)
    source = install_cell(nbformat.read(NOTEBOOKS / sorted(TINY)[0], as_version=4))
    exec(compile(source, "install cell", "exec"), {"__name__": "notebook"})
    return commands


def test_install_cell_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("PTFT_PACKAGE", raising=False)
    # a fresh Colab runtime: the repository the badge opens
    assert run_install_cell(tmp_path, monkeypatch) == [
        [sys.executable, "-m", "pip", "install", "-q", f"git+https://github.com/{REPOSITORY}"]]
    # Jupyter started in a clone: the checkout the notebook sits in
    checkout = tmp_path / "clone"
    (checkout / "ptft_keras").mkdir(parents=True)
    (checkout / "ptft_keras" / "__init__.py").write_text("")
    (checkout / "setup.cfg").write_text("")
    (checkout / "notebooks").mkdir()
    assert run_install_cell(checkout / "notebooks", monkeypatch)[0][-1] == str(checkout)
    # the override: anything pip installs
    monkeypatch.setenv("PTFT_PACKAGE", "/content/ptft_keras-0.1.0-py3-none-any.whl")
    assert run_install_cell(checkout / "notebooks", monkeypatch)[0][-1] == "/content/ptft_keras-0.1.0-py3-none-any.whl"
    with pytest.raises(RuntimeError, match=r"set os.environ\['PTFT_PACKAGE'\]"):
        run_install_cell(tmp_path, monkeypatch, returncode=1)


def copy_checkout(destination: Path) -> Path:
    """The files `pip install` needs from this checkout (the package, setup.cfg, ...) and the notebooks."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "ptft_keras", destination / "ptft_keras", ignore=ignore)
    shutil.copytree(NOTEBOOKS, destination / "notebooks", ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    return destination


def venv_without_ptft_keras(path: Path) -> Path:
    """A virtual environment that sees this one's packages (a .pth line, never processing its .pth files,
    so the editable ptft_keras stays out) and lacks ptft_keras; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    Path(purelib, "this_environment.pth").write_text("\n".join(ours) + "\n")
    return python


@pytest.fixture
def colab_like(tmp_path, monkeypatch):
    """(kernel name, kernel working directory): a fresh venv's kernel, started in a copied checkout."""
    python = venv_without_ptft_keras(tmp_path / "venv")
    check = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('ptft_keras'))"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert check.stdout.strip() == "None", "the fresh environment must lack ptft_keras"
    kernels = tmp_path / "jupyter" / "kernels" / "fresh-venv"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
        '"display_name": "fresh venv", "language": "python"}' % python
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("PATH", f"{python.parent}{os.pathsep}{os.environ['PATH']}")  # `ptft` once installed
    monkeypatch.delenv("PTFT_PACKAGE", raising=False)
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # build with this setuptools, not a downloaded one
    checkout = copy_checkout(tmp_path / "checkout")
    return "fresh-venv", checkout / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_top_to_bottom(name, colab_like):
    kernel, cwd = colab_like
    notebook = with_parameters(nbformat.read(cwd / name, as_version=4), TINY[name])
    client = NotebookClient(notebook, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(cwd)}})
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    installed = "".join(o.get("text", "") for o in install_notebook_outputs(notebook))
    assert f"installing ptft_keras from {cwd.parent}" in installed, "the install cell installed the checkout"


def install_notebook_outputs(notebook):
    return next(cell for cell in notebook.cells if cell.cell_type == "code").get("outputs", [])
