"""Capture a call's SIP and RTP on the lab's loopback addresses with dumpcap.

dumpcap is what pyshark runs underneath; the lab runs it directly so a capture costs no
per-packet decoding while the call is live. Analysis reads the file afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lab import process
from lab.config import LabConfig

START_TIMEOUT = 5.0  # s for dumpcap to report it is capturing
ENABLE_HINT = (
    "capture needs root or membership of the 'wireshark' group: "
    "sudo dpkg-reconfigure wireshark-common (answer yes) && sudo usermod -aG wireshark $USER, "
    "then log in again"
)


class CaptureUnavailable(RuntimeError):
    """The call goes on without a capture; the message says how to enable it."""


def lab_filter(cfg: LabConfig) -> str:
    """BPF for the lab's own traffic: every UDP packet to or from a party's address."""
    hosts = " or ".join(f"host {p.host}" for p in cfg.parties)
    return f"udp and ({hosts})"


class Capture:
    def __init__(self, path: Path, bpf: str, interface: str = "lo") -> None:
        self.path = path
        self.bpf = bpf
        self.interface = interface
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = path.with_suffix(".dumpcap.log")

    def start(self) -> Capture:
        dumpcap = shutil.which("dumpcap") or "/usr/bin/dumpcap"
        if not os.path.exists(dumpcap):
            raise CaptureUnavailable("dumpcap is not installed: apt-get install -y tshark")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = [dumpcap, "-i", self.interface, "-f", self.bpf, "-w", str(self.path), "-q"]
        self.proc = process.spawn(argv, self.log)
        deadline = time.monotonic() + START_TIMEOUT
        # dumpcap writes the pcapng section header as soon as it captures.
        while not (self.path.exists() and self.path.stat().st_size > 0):
            if self.proc.poll() is not None:
                text = process.tail(self.log, 40)
                self.proc = None
                if "permission" in text.lower() or "not permitted" in text.lower():
                    raise CaptureUnavailable(ENABLE_HINT)
                raise CaptureUnavailable(
                    f"dumpcap exited: {text.strip().splitlines()[-1] if text.strip() else '?'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise CaptureUnavailable(f"dumpcap did not start capturing within {START_TIMEOUT:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> Path:
        """Stop dumpcap (it flushes on SIGINT) and return the file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.stop_group(self.proc.pid)
        self.proc = None
        self.log.unlink(missing_ok=True)
        return self.path


def stored_calls(captures: Path) -> dict[str, list[Path]]:
    """The calls kept in captures/: call id -> its capture, report and recordings folder.
    A call is whatever has a <id>.pcapng or a <id>/ folder; other files are not calls."""
    calls: dict[str, list[Path]] = {}
    if not captures.is_dir():
        return calls
    for path in captures.iterdir():
        if path.is_dir() or path.suffix == ".pcapng":
            calls.setdefault(path.name.removesuffix(".pcapng"), [])
    for call_id in calls:
        candidates = (captures / f"{call_id}.pcapng", captures / f"{call_id}.html", captures / call_id)
        calls[call_id] = [p for p in candidates if p.exists()]
    return calls


def disk_use(paths: list[Path]) -> int:
    """Bytes in these files and folders."""
    return sum(
        sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
        for p in paths
    )


def prune(captures: Path, keep_calls: int, keep_mb: float) -> list[str]:
    """Remove the oldest calls until at most `keep_calls` remain and they take at most
    `keep_mb` MB (the newest call is always kept); the removed call ids, oldest first."""
    calls = stored_calls(captures)
    newest_first = sorted(calls, key=lambda c: max(p.stat().st_mtime for p in calls[c]), reverse=True)
    budget = keep_mb * 1e6
    removed = []
    for rank, call_id in enumerate(newest_first):
        budget -= disk_use(calls[call_id])
        if rank == 0 or (rank < keep_calls and budget >= 0):
            continue
        for path in calls[call_id]:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        removed.append(call_id)
    return removed[::-1]
