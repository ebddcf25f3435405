from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.capture import ENABLE_HINT, lab_filter
from lab.config import LabConfig


def test_filter_covers_every_party_and_only_udp() -> None:
    bpf = lab_filter(LabConfig())
    assert bpf.startswith("udp and (")
    for party in LabConfig().parties:
        assert f"host {party.host}" in bpf


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to drop to 'nobody'")
def test_capture_without_permission_says_how_to_enable_it() -> None:
    folder = Path(tempfile.mkdtemp(prefix="calllab-nobody-"))  # pytest's tmp is private to root
    os.chmod(folder, 0o777)
    code = (
        "from pathlib import Path\n"
        "from lab.capture import Capture, CaptureUnavailable\n"
        f"try:\n    Capture(Path({str(folder / 'x.pcapng')!r}), 'udp').start()\n"
        "except CaptureUnavailable as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(Path(__file__).parents[1]),
    )
    shutil.rmtree(folder)
    assert done.stdout.strip() == ENABLE_HINT, done.stderr
