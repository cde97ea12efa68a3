"""examples/quickstart.ipynb executes top to bottom (in a fresh kernel of this Python) and
shows its figures."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")  # the kernel sees one CPU device, as a user's would
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    images = [
        o
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]
    assert len(images) >= 4  # receptive fields, a raster, learning curve, firing rates
    text = "".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
    )
    assert "SynOps per inference" in text and "speedup" in text
    assert (tmp_path / "runs" / "quickstart" / "mlp" / "summary.json").exists()
