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

#: What each notebook must have shown, checked in its own kernel after its last cell.
CHECKS = {
    "01_first_call": """
assert result.ok and [s["status"] for s in result.statuses][-2:] == ["ESTABLISHED", "FINISH"]
assert dashboard.model is result.model and len(dashboard.model.streams) >= 6
""",
    "02_anatomy_of_the_call": """
assert result.ok
on_ladder = [s.number for s in steps if s.row is not None]
assert on_ladder == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13], [(s.number, s.shown_as) for s in steps]
assert "Browser->Gateway opus" in steps[7].shown_as  # step 8 is the audio
on_webrtc = [s.number for s in webrtc if s.row is not None]
assert on_webrtc == ["W1", "W2", "W3", "W4", "W5", "W6", "W7"], [(s.number, s.shown_as) for s in webrtc]
assert "Browser->Gateway opus" in webrtc[7].shown_as  # W8 is the SRTP
""",
    "03_dtmf_and_hold": """
assert (info.phone["dtmf_received"], rfc.phone["dtmf_received"]) == ("159#", "2468*")
assert "INFO" in [m.method for m in info.model.messages]
assert "INFO" not in [m.method for m in rfc.model.messages]
assert "sendonly" in {m.sdp[0].direction for m in model.messages if m.sdp}
assert moved.reason == "transferred to +79990000002" and moved.transfer["code"] == 200
assert joined.transfer["attended"] and joined.transfer["code"] == 200
""",
    "04_codecs_and_quality": """
assert sorted(models) == ["opus", "pcma", "pcmu"]
assert all(len(m.pesq) == 2 and all(p.mos_lqo > 2.0 for p in m.pesq) for m in models.values())
browser_leg = {c: next(s.codec.lower() for s in m.streams if s.src_party == "Browser")
               for c, m in models.items()}
assert browser_leg == {"opus": "opus", "pcmu": "pcmu", "pcma": "pcma"}, browser_leg
chains = {name: next(p.chain for p in m.pesq if p.direction.startswith("Browser"))
          for name, m in legs.items()}
assert chains == {"PCMU / GSM": ("opus", "pcmu", "gsm"), "G722 / PCMU": ("opus", "g722", "pcmu"),
                  "PCMU / ILBC": ("opus", "pcmu", "ilbc")}, chains
""",
    "05_analyse_any_capture": """
assert len(model.messages) > 0 and len(model.parties) >= 2
assert invite and invite[0]["method"] == "INVITE"
""",
    "06_network_impairments": """
assert clean.ok and lossy.ok and not clean.impairments
said = {r["direction"]: r for r in lossy.impairments}
assert sorted(said) == ["to-browser", "to-phone"] and all(r["dropped"] > 0 for r in said.values()), said
hops = {h.dst_party: h for h in lossy.model.hops}
assert hops["Mobile phone"].lost == len(said["to-phone"]["dropped_seqs"]), (hops, said)
assert [r["index"] for r in results.ordered] == [0, 1, 2, 3] and all(r["to_phone_pesq"] for r in results.rows)
""",
}


@pytest.fixture(scope="module")
async def lab_up(lab_config: LabConfig) -> object:
    """One lab for all notebooks: they find it as `calllab up`'s (running_config)."""
    os.environ["CALLLAB_HOME"] = str(lab_config.home)
    start_daemon(lab_config)
    yield None
    stop_daemon(lab_config)


def test_there_are_six_notebooks_each_saying_what_it_teaches() -> None:
    assert [p.stem for p in NOTEBOOKS] == sorted(CHECKS)
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
    book.cells.append(nbformat.v4.new_code_cell(CHECKS[path.stem]))
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
