"""Child processes the lab starts: spawned so they die with their parent, stopped by PID;
and what every process that carries calls does once it is set up (freeze_startup_heap)."""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM when the parent
    # (precisely: the thread that forked) exits, so no party outlives a crashed lab.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    os.setpgid(0, 0)  # own process group: Kamailio's workers are stopped with their main


def freeze_startup_heap() -> None:
    """Keep what this process made so far (modules, its endpoint, its loop: most of its heap)
    out of the garbage collector's full collections, which stop the event loop while they walk
    the heap. In a client carrying 8 calls (`calllab load ... --concurrency 8 --codec pcmu`)
    they stopped it for 49 and 108 ms while the calls talked: a gap in every call's RTP at
    once, which a passed-through call hands to the far end's jitter buffer (PESQ browser ->
    phone, median of 8: 2.21; frozen: 2.56, pauses 24 and 56 ms). Call it once, when the
    process is set up: what it froze is never freed."""
    gc.collect()
    gc.freeze()


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            env={**os.environ, **(env or {})},
            close_fds=True,
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the process group led by pid, SIGKILL what is left after timeout."""
    stop_groups([pid], timeout)


def stop_groups(pids: Sequence[int], timeout: float = 5.0) -> None:
    """SIGTERM the process groups led by pids all at once, SIGKILL what is left after timeout:
    a lab's parties stop together, in the time of the slowest (one after the other, a lab of
    19 pjsua2 processes outlasted `calllab down`'s wait, and the next lab found its ports taken)."""
    left = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        signalled = []
        for pid in left:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                continue
            signalled.append(pid)
        deadline = time.monotonic() + timeout
        while signalled and time.monotonic() < deadline:
            signalled = [pid for pid in signalled if not _stopped(pid)]
            if signalled:
                time.sleep(0.02)
        if not signalled:
            return
        left = signalled


def _stopped(pid: int) -> bool:
    """Whether the group led by pid is gone, its leader reaped when it is our child."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (a lab started by `calllab up`)
        reaped = pid if not alive(pid) else 0
    return reaped == pid and not _group_alive(pid)


def kill_group(pid: int, timeout: float = 5.0) -> None:
    """SIGKILL the process group led by pid (a crash: no goodbye to anyone) and reap it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    stop_group(pid, timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
