"""Two labs on one machine at once, as two students of one JupyterHub have them: each its own
addresses, a call in each at the same time, each capture holding only its own lab's packets."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.audio import heard_match, pesq_nb, read_wav
from lab.config import LabConfig
from lab.stack import Stack

pytestmark = pytest.mark.slow

NUMBER = "+79991234567"
PESQ_FLOOR = 2.0  # as tests/test_call_path.py: Opus -> PCMU -> GSM 06.10 and back
CALL_TIMEOUT = 120.0  # s for a whole `calllab call` (imports, call, analysis) on a busy machine


async def calllab_call(home: Path, instance: int) -> dict[str, Any]:
    """`calllab call --instance N --json` in a process of its own, as a student's CLI runs it;
    the SIP leg's media crosses the lab's core network, so the capture also holds the
    network party's control requests (which must come from this lab's addresses)."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "lab.cli", "call", NUMBER, "--duration", "4", "--answer-after", "0.5"),
        # through the lab's core network: its control requests are in the capture too
        *("--impair", "sip:both:delay=20ms", "--instance", str(instance), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CALLLAB_HOME": str(home)},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CALL_TIMEOUT)
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"the call in lab {instance} did not end within {CALL_TIMEOUT:g} s") from None
    assert proc.returncode == 0, f"the call in lab {instance} failed: {err.decode()[-2000:]}"
    result: dict[str, Any] = json.loads(out)
    return result


def addresses(capture: Path) -> set[str]:
    """Every IPv4 address in a capture, as Wireshark reads it."""
    done = subprocess.run(
        ["tshark", "-r", str(capture), "-T", "fields", "-e", "ip.src", "-e", "ip.dst"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {a for line in done.stdout.splitlines() for a in line.split("\t") if a}


def sip_pairs(capture: Path) -> set[tuple[str, str]]:
    """(source, destination) of every SIP packet in a capture."""
    done = subprocess.run(
        ["tshark", "-r", str(capture), "-Y", "sip", "-T", "fields", "-e", "ip.src", "-e", "ip.dst"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {(src, dst) for src, dst in (line.split("\t") for line in done.stdout.splitlines())}


def talked(result: dict[str, Any], prompts: Path) -> None:
    """The audio checks of tests/test_call_path.py: each side hears the other's prompt."""
    browser_prompt, _ = read_wav(prompts / "browser.wav")
    phone_prompt, _ = read_wav(prompts / "phone.wav")
    at_phone, _ = read_wav(Path(result["audio"]["phone_received"]))
    at_browser, _ = read_wav(Path(result["audio"]["browser_received"]))
    assert heard_match(browser_prompt, at_phone) > 0.85
    assert heard_match(phone_prompt, at_browser) > 0.85
    assert pesq_nb(browser_prompt, at_phone) > PESQ_FLOOR
    assert pesq_nb(phone_prompt, at_browser) > PESQ_FLOOR


def talk_time(result: dict[str, Any]) -> tuple[float, float]:
    t = {s["status"]: s["t"] for s in result["statuses"]}
    return t["ESTABLISHED"], t["FINISH"]


async def test_two_labs_at_once_each_with_its_own_call_and_capture(lab_config: LabConfig) -> None:
    first = await Stack(lab_config, first_free=True).start()
    try:
        second = await Stack(lab_config, first_free=True).start()  # lab 0 is taken: the next one
        try:
            assert (first.cfg.instance, second.cfg.instance) == (0, 1)
            status = subprocess.run(
                [sys.executable, "-m", "lab.cli", "status"],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "CALLLAB_HOME": str(lab_config.home)},
            )
            assert status.returncode == 0, status.stdout + status.stderr
            assert "lab is up (instance 0" in status.stdout and "lab is up (instance 1" in status.stdout
            assert status.stdout.count(" ok") == 2 * len(lab_config.processes)
            assert "127.0.1.3:5060" in status.stdout

            results = await asyncio.gather(
                *(calllab_call(lab_config.home, s.cfg.instance) for s in (first, second))
            )
        finally:
            second.stop()
    finally:
        first.stop()

    (one_start, one_end), (two_start, two_end) = (talk_time(r) for r in results)
    assert max(one_start, two_start) < min(one_end, two_end), "the two calls did not talk at the same time"
    seen = []
    for stack, result in zip((first, second), results, strict=True):
        cfg = stack.cfg
        assert result["final_status"] == "FINISH" and result["sip_code"] == 200, result["reason"]
        talked(result, cfg.prompts_dir)
        capture = Path(result["capture"])
        assert capture.parent == cfg.captures_dir
        own = {p.host for p in cfg.parties}
        found = addresses(capture)
        assert found <= own, f"lab {cfg.instance}'s capture holds other labs' packets: {sorted(found - own)}"
        # and the whole call path of its own lab: its SIP server relayed to its PSTN gateway
        sip = sip_pairs(capture)
        assert (cfg.gateway.host, cfg.sipserver.host) in sip
        assert (cfg.sipserver.host, cfg.pstn.host) in sip
        assert (cfg.pstn.host, cfg.phone.host) in sip
        assert cfg.core_network.host in found and result["impairments"][0]["packets"] > 100
        seen.append(found)
    assert seen[0].isdisjoint(seen[1])
