"""Every notebook runs top to bottom in a real kernel, against the real lab."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lab.config import LabConfig
from lab.stack import start_daemon, stop_daemon

pytestmark = pytest.mark.slow
NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
async def lab_up(lab_config: LabConfig) -> object:
    """One lab for all notebooks: they find it as `calllab up`'s (running_config)."""
    os.environ["CALLLAB_HOME"] = str(lab_config.home)
    start_daemon(lab_config)
    yield None
    stop_daemon(lab_config)


def test_there_are_five_notebooks_each_saying_what_it_teaches() -> None:
    assert len(NOTEBOOKS) == 5
    for path in NOTEBOOKS:
        book = nbformat.read(path, as_version=4)
        assert "What this teaches" in book.cells[0].source
        assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code"), (
            f"{path.name} saved with outputs"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(
    path: Path, lab_up: object, lab_config: LabConfig, tmp_path: Path
) -> None:
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    saved = tmp_path / path.name
    nbformat.write(book, saved)
    text = saved.read_text()
    assert "Traceback" not in text
    config = LabConfig.load(lab_config.run_dir / "lab.json")
    assert config.password not in text
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was shown"
    if path.stem.startswith("01"):
        statuses = json.dumps([o.get("data", {}).get("text/plain", "") for o in outputs])
        for status in ("RING", "ESTABLISHED", "FINISH"):
            assert status in statuses
