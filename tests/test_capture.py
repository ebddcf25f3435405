from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lab.capture import ENABLE_HINT, lab_filter, prune, stored_calls
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


def _fake_call(captures: Path, call_id: str, mtime: float, kb: int = 10) -> None:
    (captures / f"{call_id}.pcapng").write_bytes(b"\0" * kb * 1000)
    (captures / f"{call_id}.html").write_text("report")
    folder = captures / call_id
    folder.mkdir()
    (folder / "call.json").write_text("{}")
    for path in (captures / f"{call_id}.pcapng", captures / f"{call_id}.html", folder):
        os.utime(path, (mtime, mtime))


def test_prune_keeps_the_newest_calls_within_both_limits(tmp_path: Path) -> None:
    for i in range(6):
        _fake_call(tmp_path, f"call-{i}", mtime=1_000_000 + i)
    (tmp_path / "01_first_call.html").write_text("a notebook export, not a call")
    assert sorted(stored_calls(tmp_path)) == [f"call-{i}" for i in range(6)]
    assert prune(tmp_path, keep_calls=4, keep_mb=100) == ["call-0", "call-1"]
    assert sorted(stored_calls(tmp_path)) == ["call-2", "call-3", "call-4", "call-5"]
    assert not (tmp_path / "call-0").exists() and not (tmp_path / "call-0.html").exists()
    # 10 kB captures: 0.025 MB holds two calls (with their small reports and folders).
    assert prune(tmp_path, keep_calls=100, keep_mb=0.025) == ["call-2", "call-3"]
    assert (tmp_path / "01_first_call.html").exists()
    # The newest call stays whatever the limits say.
    assert prune(tmp_path, keep_calls=1, keep_mb=0) == ["call-4"]
    assert list(stored_calls(tmp_path)) == ["call-5"]


def test_calllab_clean_reports_what_it_removed(tmp_path: Path) -> None:
    captures = tmp_path / "captures"
    captures.mkdir()
    for i in range(3):
        _fake_call(captures, f"call-{i}", mtime=1_000_000 + i)
    env = {"CALLLAB_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "lab.cli", "clean", "--keep", "1"],
        env={**os.environ, **env},
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(f"removed 2 calls; {captures} keeps 1 calls")
    bad = subprocess.run([sys.executable, "-m", "lab.cli", "clean", "--keep", "0"], capture_output=True)
    assert bad.returncode == 2 and b"must be 1 or more" in bad.stderr
