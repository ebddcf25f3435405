"""The lab's processes: ready, reported, stopped - also when their owner dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import process
from lab.config import LabConfig
from lab.stack import LabError, Stack, read_state

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "lab.cli"]


def cli(home: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLLAB_HOME": str(home)}
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if process.alive(p)]
        if not left:
            return []
        time.sleep(0.05)
    return left


def kamailio_workers(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid="], capture_output=True, text=True).stdout
    return [int(pid) for pid, group in (line.split() for line in out.splitlines()) if int(group) == pgid]


async def test_start_and_stop_leave_nothing_behind(lab_config: LabConfig) -> None:
    stack = Stack(lab_config)
    await stack.start()
    assert stack.ready_s is not None and stack.ready_s < 10
    pids = [p.proc.pid for p in stack.parties if p.proc]
    cfg = lab_config
    pools = len(cfg.gateway_pool) + cfg.pstn_channel_count + len(cfg.phone_pool)
    # the gateway's front, the SIP server, the second phone, the video phone, 3 networks
    assert len(pids) == len(cfg.processes) == pools + 7
    kamailio = stack.parties[0].proc
    assert kamailio is not None
    workers = kamailio_workers(kamailio.pid)
    assert len(workers) > 1  # Kamailio forks its workers into the group we stop
    stack.stop()
    assert wait_gone(pids + workers) == []


async def test_address_in_use_is_named(lab_config: LabConfig) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind((lab_config.sipserver.host, lab_config.sipserver.sip_port))
    try:
        with pytest.raises(LabError, match=r"SIP server: address 127\.0\.0\.3:5060/udp is already in use"):
            await Stack(lab_config).start()
    finally:
        squatter.close()


@pytest.fixture
def downed(lab_home: Path) -> Iterator[Path]:
    """The test's home; whatever lab the test left up there is stopped, pass or fail."""
    yield lab_home
    cli(lab_home, "down")


def test_cli_up_status_down(downed: Path) -> None:
    lab_home = downed
    up = cli(lab_home, "up")
    assert up.returncode == 0, up.stderr
    assert "lab up in" in up.stdout
    state = read_state(LabConfig(home=lab_home))
    assert state is not None
    pids = [entry["pid"] for entry in state["parties"].values()]
    status = cli(lab_home, "status")
    assert status.returncode == 0
    for name in ("Gateway", "SIP server", "PSTN gateway ch1", "PSTN gateway ch4", "Mobile phone 2"):
        assert name in status.stdout
    assert status.stdout.count(" ok") == len(state["parties"]) == len(LabConfig(home=lab_home).processes)
    down = cli(lab_home, "down")
    assert down.returncode == 0 and "lab stopped" in down.stdout
    assert wait_gone(pids + [state["owner"]]) == []
    assert "lab is down" in cli(lab_home, "status").stdout


def test_parties_die_with_a_killed_owner(downed: Path) -> None:
    lab_home = downed
    assert cli(lab_home, "up").returncode == 0
    state = read_state(LabConfig(home=lab_home))
    assert state is not None
    pids = [entry["pid"] for entry in state["parties"].values()]
    os.kill(state["owner"], signal.SIGKILL)
    assert wait_gone(pids) == [], "parties outlived their owner"


def test_cli_call_json_starts_and_stops_the_lab(lab_home: Path) -> None:
    done = cli(lab_home, "call", "+79991234567", "--duration", "1", "--answer-after", "0.3", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["final_status"] == "FINISH" and result["sip_code"] == 200
    assert [s["status"] for s in result["statuses"]] == ["PENDING", "TRYING", "RING", "ESTABLISHED", "FINISH"]
    assert result["setup_ms"] > 0
    for name in ("browser_sent", "browser_received", "phone_sent", "phone_received"):
        assert Path(result["audio"][name]).stat().st_size > 1000
    assert "ESTABLISHED 200 OK" in done.stderr  # statuses as they change
    assert read_state(LabConfig(home=lab_home)) is None


def test_cli_call_refuses_a_bad_number_without_a_lab(lab_home: Path) -> None:
    done = cli(lab_home, "call", "123@evil.example;transport=tcp", "--json", timeout=20)
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["final_status"] == "FAILED" and "is not a phone number" in result["reason"]
