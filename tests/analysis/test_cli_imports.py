"""`calllab analyze --json` as a whole process pays only for what the analysis needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import FIXTURES

SCRIPT = """
import contextlib, io, json, sys
from lab.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["analyze", sys.argv[1], "--json"])
print(json.dumps([code, sorted(sys.modules)]))
"""


def test_analyze_loads_no_plotting_audio_sweep_or_masked_arrays() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(FIXTURES / "lab_call.pcapng")],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"},
    )
    code, modules = json.loads(out.stdout)
    assert code == 0 and "lab.analysis.model" in modules and "numpy" in modules
    for heavy in ("matplotlib", "pyshark", "scipy", "aiortc", "pjsua2", "numpy.ma", "lab.sweep", "lab.audio"):
        assert heavy not in modules, f"{heavy} loaded by calllab analyze --json"
