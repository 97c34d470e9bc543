"""Every notebook in notebooks/ runs top to bottom, on tiny settings, in a fresh Python kernel.

Like papermill: a cell setting the tiny values is inserted after the cell tagged ``parameters``.
Each value must override a name that cell assigns, so a renamed parameter fails here instead of
silently running the notebook at full size. Outputs go to a temporary directory, which is also the
kernel's working directory. The kernel is ``python3``, started with this interpreter (jupyter_client
runs a kernel spec whose command is ``python`` with ``sys.executable``).
"""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# notebook -> tiny parameter values; paths are relative to the kernel's (temporary) working directory
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


def test_every_notebook_has_tiny_settings():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_is_written_for_colab(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert 'find_spec("ptft_keras") is None' in first_code.source and "pip" in first_code.source
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it cleared"


@pytest.mark.parametrize("name", sorted(TINY))
def test_notebook_runs_top_to_bottom(name, tmp_path):
    notebook = with_parameters(nbformat.read(NOTEBOOKS / name, as_version=4), TINY[name])
    client = NotebookClient(notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
