"""The video phone party (lab.sip.videophone): baresip's config, its registration as the
SIP server sees it, and its control socket. The calls themselves: test_videophone_call."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from lab.audio import read_wav, write_wav
from lab.config import LabConfig
from lab.sip import videophone
from lab.sipserver import render_config


def lab(tmp_path: Path) -> LabConfig:
    return dataclasses.replace(LabConfig(), home=tmp_path).at(2).with_password()


def test_baresip_listens_and_sends_media_only_on_its_own_loopback_address(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    files = videophone.render(
        cfg, ["opus", "g711", "vp8", "aufile", "sndfile", "fakevideo", "ctrl_tcp", "menu"]
    )
    config = dict(line.split(" ", 1) for line in files["config"].splitlines() if " " in line)
    assert config["sip_listen"] == "127.0.2.10:5060"
    assert config["net_interface"] == "127.0.2.10"  # else the SDP names the machine's eth0
    assert config["ctrl_tcp_listen"] == "127.0.2.10:4444"
    assert config["rtp_ports"] == "42000-42099"
    assert config["video_source"] == "fakevideo,nil" and config["video_size"] == "320x240"
    assert config["audio_source"] == f"aufile,{videophone.talk_path(cfg)}"
    assert config["snd_path"] == str(videophone.recordings_dir(cfg))
    modules = [line.split()[1] for line in files["config"].splitlines() if line.startswith("module ")]
    assert modules == [
        "opus.so",
        "g711.so",
        "vp8.so",
        "aufile.so",
        "sndfile.so",
        "fakevideo.so",
        "ctrl_tcp.so",
    ]
    assert cfg.videophone_password not in files["config"]
    assert files["accounts"] == (
        f"<sip:1001@127.0.2.3;transport=udp>;auth_pass={cfg.videophone_password};answermode=auto;regint=3600\n"
    )


def a_prompt(cfg: LabConfig, seconds: float) -> np.ndarray:
    samples = np.sin(np.arange(int(seconds * 8000)) * 0.05).astype(np.float32) / 2
    write_wav(cfg.prompts_dir / "phone.wav", samples, 8000)
    return read_wav(cfg.prompts_dir / "phone.wav")[0]


def test_the_phone_talks_its_prompt_looped_for_the_whole_talk_time(tmp_path: Path) -> None:
    """aufile plays its file once, and the call ends with it: the prompt is looped instead."""
    cfg = lab(tmp_path)
    prompt = a_prompt(cfg, 1.3)
    videophone.write_config(cfg)
    talk, rate = read_wav(videophone.talk_path(cfg))
    assert rate == 8000 and len(talk) >= videophone.TALK_S * rate
    assert len(talk) % len(prompt) == 0 and np.array_equal(talk[len(prompt) * 7 : len(prompt) * 8], prompt)


def test_the_config_dir_is_private_to_the_lab(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    a_prompt(cfg, 0.5)
    folder = videophone.write_config(cfg)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "accounts").stat().st_mode & 0o777 == 0o600
    assert videophone.recordings_dir(cfg).is_dir()


def test_the_sip_server_knows_the_video_phone_as_a_user_and_says_when_it_is_away(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    text = render_config(cfg, {cfg.login: cfg.password, cfg.videophone_number: cfg.videophone_password})
    assert f'if ($au == "1001") {{ $var(password) = "{cfg.videophone_password}"; }}' in text
    assert 'if ($rU == "1001") {' in text
    assert '"Temporarily Unavailable - video phone 1001 is not registered"' in text


def test_every_lab_run_has_its_own_video_phone_password() -> None:
    first, second = LabConfig().with_password(), LabConfig().with_password()
    assert first.videophone_password and first.videophone_password != second.videophone_password
    assert first.videophone_password != first.password
    assert first.with_password() == first
    assert first.videophone_password not in repr(first)


def test_baresips_word_on_its_register() -> None:
    aor = "1001@127.0.0.3"
    log = (
        "baresip is ready.\n"
        "\x1b[31m1001@127.0.0.3: {0/UDP/v4} 401 Unauthorized\x1b[;m\n"
        "1001@127.0.0.3: {0/UDP/v4} 200 OK (calllab SIP server (Kamailio)) [1 binding]\n"
    )
    assert (
        videophone._registration(log, aor) == "{0/UDP/v4} 200 OK (calllab SIP server (Kamailio)) [1 binding]"
    )
    assert videophone._registration(log.rsplit("\n", 2)[0], aor) == "{0/UDP/v4} 401 Unauthorized"
    assert videophone._registration("baresip is ready.\n", aor) is None


async def fake_ctrl_tcp(replies: dict[str, dict[str, object]]) -> tuple[asyncio.Server, list[str]]:
    """A stand-in for baresip's ctrl_tcp on 127.0.0.1: an event first, then the reply."""
    asked: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = json.loads(await videophone._read_netstring(reader))
        asked.append(request["command"])
        for message in ({"event": True, "type": "CALL_RINGING"}, replies[request["command"]]):
            writer.write(videophone._netstring(json.dumps(message | {"token": request["token"]}).encode()))
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), asked


async def test_the_stack_asks_baresip_whether_it_is_registered() -> None:
    registered = (
        "\n--- User Agents (1) ---\n"
        "> sip:1001@127.0.0.3   \x1b[32mOK \x1b[;m calllab SIP server (Kamailio) Expires 3600s\n\n"
    )
    unregistered = "\n--- User Agents (1) ---\n> sip:1001@127.0.0.3   \x1b[31mERR\x1b[;m\n\n"
    for data, expected in ((registered, True), (unregistered, False)):
        server, asked = await fake_ctrl_tcp({"reginfo": {"response": True, "ok": True, "data": data}})
        port = server.sockets[0].getsockname()[1]
        cfg = dataclasses.replace(
            LabConfig(), videophone=dataclasses.replace(LabConfig().videophone, host="127.0.0.1")
        )
        cfg = dataclasses.replace(cfg, videophone_control_port=port)
        async with server:
            assert await videophone.registered(cfg, timeout=1.0) is expected
        assert asked == ["reginfo"]
    server, _ = await fake_ctrl_tcp({"nope": {"response": True, "ok": False, "data": "command not found"}})
    cfg = dataclasses.replace(cfg, videophone_control_port=server.sockets[0].getsockname()[1])
    async with server:
        with pytest.raises(ValueError, match="Video phone: baresip refused 'nope': command not found"):
            await videophone.command(cfg, "nope")


async def test_a_calls_recording_is_taken_once_baresip_has_closed_it(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    videophone.recordings_dir(cfg).mkdir(parents=True)
    known = videophone.recordings(cfg)
    path = videophone.recordings_dir(cfg) / "dump-2026-11-29-17-03-08-dec.wav"
    path.write_bytes(b"RIFF\0\0\0\0WAVEfmt ")  # open: its sizes are written at the end
    with pytest.raises(TimeoutError, match="Video phone: no finished recording"):
        await videophone.next_recording(cfg, known, timeout=0.1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 160)
    assert await videophone.next_recording(cfg, known, timeout=0.1) == path
    with pytest.raises(TimeoutError):
        await videophone.next_recording(cfg, known | {path}, timeout=0.1)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_bind_shim_keeps_a_socket_bound_to_every_interface_on_the_party_address(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    cfg.run_dir.mkdir(parents=True)
    shim = videophone.bind_shim(cfg)
    assert shim is not None and shim.exists()
    code = (
        "import socket\n"
        "for host in ('0.0.0.0', '127.0.0.1'):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.bind((host, 0))\n"
        "    print(s.getsockname()[0])\n"
    )
    env = {**os.environ, "LD_PRELOAD": str(shim), "CALLLAB_BIND_ADDRESS": cfg.videophone.host}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["127.0.2.10", "127.0.0.1"]  # only the wildcard moves
    assert videophone.bind_shim(cfg) == shim  # built once


def test_the_frame_rates_are_baresips_last_word_on_its_call(tmp_path: Path) -> None:
    cfg = lab(tmp_path)
    cfg.run_dir.mkdir(parents=True)
    videophone.baresip_log(cfg).write_text("baresip is ready.\n")
    assert videophone.frame_rates(cfg) is None
    status = "[0:00:0{s}] audio=64000/64000 video=28675/72103 (bit/s) efps={tx}/{rx}    "
    line = "".join(status.format(s=s, tx=tx, rx=rx) for s, tx, rx in ((4, "0.0", "0.0"), (5, "25.0", "28.6")))
    videophone.baresip_log(cfg).write_text("baresip is ready.\n" + line + "\nsip:VKP009: session closed\n")
    assert videophone.frame_rates(cfg) == (25.0, 28.6)
