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
