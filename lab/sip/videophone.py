"""The video phone: baresip from Debian, a real SIP softphone with video, as a lab party.

It registers on the lab's SIP server as the user cfg.videophone_number, so a call reaches it
the way calls reach any SIP user, through the registrar, not by a route of the lab's own. It
answers every call at once, talks from the phone's speech prompt (aufile), records what it
hears (sndfile: dump-<time>-dec.wav in recordings_dir) and films a test pattern (fakevideo).

baresip takes its settings from files only, so this process writes its config dir at run
time (0700: the accounts file holds the password), starts it, waits for its REGISTER 200 and
stops it by PID. The stack asks baresip itself whether it is registered (registered(), over
its ctrl_tcp socket on the party's address). baresip binds its RTP to every interface, so
its media would leave from 127.0.0.1 (the browser's address): bindshim.c, built here with
the machine's C compiler and preloaded, binds it to the party's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import time
import wave
from pathlib import Path

from lab import process
from lab.audio import wav_is_final
from lab.config import LabConfig, Party

APT_PACKAGE = "baresip-core"
MODULE_DIR = Path("/usr/lib/baresip/modules")
#: What the party loads of what is installed: audio codecs in the order offered, video codecs
#: (avcodec's H.264 comes with baresip-ffmpeg), then media sources, sinks and filters
#: (snapshot saves a received picture), and control: ctrl_tcp takes the commands that menu
#: (reginfo, callstat) and snapshot (snapshot_recv) define.
MODULES = (
    "opus",
    "g711",
    "vp8",
    "avcodec",
    "aufile",
    "aubridge",
    "sndfile",
    "fakevideo",
    "snapshot",
    "ctrl_tcp",
)
APP_MODULES = ("menu",)
SHIM_SOURCE = Path(__file__).with_name("bindshim.c")
SHIM_PACKAGES = "gcc libc6-dev"
REGISTER_TIMEOUT = 5.0  # s for baresip's REGISTER 200; Kamailio answers in milliseconds
#: s the phone talks: aufile plays its file once and baresip's menu then hangs the call up
#: ("audio error (end of file)"), so the prompt is looped into a file this long
TALK_S = 300
VIDEO_SIZE = (320, 240)  # the test pattern's, as the lab's browser films (lab.webrtc.ColourBarCamera)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REGISTERED = re.compile(r"\sOK(\s|$)")
_EFPS = re.compile(r"efps=([0-9.]+)/([0-9.]+)")

log = logging.getLogger("video-phone")


def find_binary() -> str | None:
    return shutil.which("baresip")


def config_dir(cfg: LabConfig) -> Path:
    return cfg.run_dir / "video-phone"


def talk_path(cfg: LabConfig) -> Path:
    return config_dir(cfg) / "talk.wav"


def write_talk(cfg: LabConfig) -> None:
    """The phone's prompt looped for TALK_S s, sample for sample."""
    with wave.open(str(cfg.prompts_dir / "phone.wav"), "rb") as prompt:
        params, frames = prompt.getparams(), prompt.readframes(prompt.getnframes())
    loops = -(-TALK_S * params.framerate // params.nframes)
    with wave.open(str(talk_path(cfg)), "wb") as talk:
        talk.setparams(params)
        talk.writeframes(frames * loops)


def recordings_dir(cfg: LabConfig) -> Path:
    """Where baresip's sndfile writes each call: dump-<local time>-dec.wav is what it heard,
    -enc.wav what it sent."""
    return config_dir(cfg) / "recordings"


def baresip_log(cfg: LabConfig) -> Path:
    return cfg.run_dir / "video-phone.baresip.log"


def recordings(cfg: LabConfig) -> set[Path]:
    """What the video phone heard, a WAV per call so far."""
    return set(recordings_dir(cfg).glob("dump-*-dec.wav"))


async def next_recording(cfg: LabConfig, known: set[Path], timeout: float = 5.0) -> Path:
    """The recording of the first call not in `known` (recordings() before it), once baresip
    has closed it (at the call's end); TimeoutError naming the party when there is none."""
    deadline = time.monotonic() + timeout
    while True:
        done = sorted(p for p in recordings(cfg) - known if wav_is_final(p))
        if done:
            return done[0]
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Video phone: no finished recording of a new call in {recordings_dir(cfg)} "
                f"within {timeout:g} s"
            )
        await asyncio.sleep(0.05)


def render(cfg: LabConfig, modules: list[str]) -> dict[str, str]:
    """baresip's config and accounts files for this lab: SIP and media on the party's own
    loopback address (net_interface takes an address: else baresip puts the machine's
    default interface in its SDP), audio from the phone's prompt, video from the test pattern."""
    party = cfg.videophone
    width, height = VIDEO_SIZE
    lines = [
        "poll_method epoll",
        f"sip_listen {party.sip_address}",
        f"net_interface {party.host}",
        f"rtp_ports {party.rtp_port}-{party.rtp_port + party.rtp_port_count - 1}",
        "call_max_calls 4",
        # No sound card: what it hears goes to a bridge nobody reads; sndfile records it first.
        "audio_player aubridge,nowhere",
        "audio_alert aubridge,nowhere",
        f"audio_source aufile,{talk_path(cfg)}",
        f"ausrc_srate {cfg.audio_rate}",
        "video_source fakevideo,nil",
        "video_display fakevideo,nil",
        f"video_size {width}x{height}",
        "video_fps 25",
        f"snd_path {recordings_dir(cfg)}",
        f"ctrl_tcp_listen {party.host}:{cfg.videophone_control_port}",
        f"module_path {MODULE_DIR}",
        *(f"module {name}.so" for name in modules if name not in APP_MODULES),
        "module_tmp account.so",
        *(f"module_app {name}.so" for name in modules if name in APP_MODULES),
    ]
    account = (
        f"<sip:{cfg.videophone_number}@{cfg.sipserver.host};transport=udp>"
        f";auth_pass={cfg.videophone_password};answermode=auto;regint=3600\n"
    )
    return {"config": "\n".join(lines) + "\n", "accounts": account}


def installed_modules() -> list[str]:
    return [name for name in (*MODULES, *APP_MODULES) if (MODULE_DIR / f"{name}.so").exists()]


def write_config(cfg: LabConfig) -> Path:
    folder = config_dir(cfg)
    recordings_dir(cfg).mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name, text in render(cfg, installed_modules()).items():
        path = folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    write_talk(cfg)
    return folder


def bind_shim(cfg: LabConfig) -> Path | None:
    """bindshim.c built into the run dir (again when the source is newer); None, said in the
    log, without a C compiler: then the video phone's media leaves from 127.0.0.1."""
    built = build_preload(SHIM_SOURCE, cfg.run_dir / "bindshim.so", "Video phone")
    if built is None:
        log.warning(
            "no C compiler (apt-get install -y %s): baresip's media leaves from 127.0.0.1, not %s",
            SHIM_PACKAGES,
            cfg.videophone.host,
        )
    return built


def build_preload(source: Path, built: Path, who: str) -> Path | None:
    """The C file `source` built as a library to LD_PRELOAD into `built` (again when the
    source is newer); None without a C compiler. RuntimeError, naming `who` needs it, when
    it does not build."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    if not built.exists() or built.stat().st_mtime < source.stat().st_mtime:
        argv = [compiler, "-shared", "-fPIC", "-O2", "-o", str(built), str(source), "-ldl"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{who}: building {source.name} failed:\n{done.stderr.strip()}")
    return built


def _netstring(data: bytes) -> bytes:
    return b"%d:%s," % (len(data), data)


async def _read_netstring(reader: asyncio.StreamReader) -> bytes:
    length = int((await reader.readuntil(b":"))[:-1])
    data = await reader.readexactly(length + 1)
    if data[-1:] != b",":
        raise ValueError("baresip's ctrl_tcp: a netstring without its ','")
    return data[:-1]


async def command(cfg: LabConfig, line: str, timeout: float = 1.0) -> str:
    """One command to baresip's ctrl_tcp (its long form, e.g. `reginfo`) and its reply's text;
    ValueError when baresip says the command failed."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(cfg.videophone.host, cfg.videophone_control_port)
        try:
            name, _, params = line.partition(" ")
            writer.write(_netstring(json.dumps({"command": name, "params": params, "token": "lab"}).encode()))
            while True:  # events about calls come on the same socket
                reply = json.loads(await _read_netstring(reader))
                if reply.get("response"):
                    break
        finally:
            writer.close()
    text = _ANSI.sub("", str(reply.get("data", "")))
    if not reply.get("ok"):
        raise ValueError(f"Video phone: baresip refused {name!r}: {text.strip()}")
    return text


async def registered(cfg: LabConfig, timeout: float) -> bool:
    """Whether baresip says its account is registered: ctrl_tcp `reginfo` answers
    `> sip:1001@127.0.0.3   OK  calllab SIP server (Kamailio) Expires 3600s`."""
    text = await command(cfg, "reginfo", timeout)
    return any(_REGISTERED.search(line) for line in text.splitlines() if "sip:" in line)


async def snapshot(cfg: LabConfig, path: Path, timeout: float = 3.0) -> tuple[int, int]:
    """The size of the next picture the video phone decodes from its call, saved to `path`
    (a PNG, by snapshot_recv): proof that the video it receives is a picture.
    TimeoutError naming the party when it decodes none within `timeout` s."""
    path.unlink(missing_ok=True)
    await command(cfg, f"snapshot_recv {path}")
    deadline = time.monotonic() + timeout
    while True:
        head = path.read_bytes()[:24] if path.exists() else b""
        if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack("!II", head[16:24])  # the IHDR chunk comes first
            return width, height
        if time.monotonic() > deadline:
            raise TimeoutError(f"Video phone: decoded no picture of its call within {timeout:g} s")
        await asyncio.sleep(0.05)


def frame_rates(cfg: LabConfig) -> tuple[float, float] | None:
    """The video frame rates (sent, received) of the video phone's latest call, from the
    status line baresip prints while a call lasts (`... efps=25.0/28.6`); None before any."""
    rates = _EFPS.findall(baresip_log(cfg).read_text(errors="replace"))
    return (float(rates[-1][0]), float(rates[-1][1])) if rates else None


def _registration(text: str, aor: str) -> str | None:
    """baresip's last word on its REGISTER, e.g. `{0/UDP/v4} 200 OK (...) [1 binding]`."""
    said = [
        line.split(": ", 1)[1] for line in _ANSI.sub("", text).splitlines() if line.startswith(aor + ": ")
    ]
    return said[-1] if said else None


async def wait_registered(cfg: LabConfig, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until baresip's REGISTER gets its 200; RuntimeError naming the party and what the SIP
    server said (or that it said nothing) when it does not within `timeout` s."""
    aor = f"{cfg.videophone_number}@{cfg.sipserver.host}"
    path = baresip_log(cfg)
    deadline = time.monotonic() + timeout
    said: str | None = None
    while True:
        said = _registration(path.read_text(errors="replace"), aor)
        if said is not None and " 200 " in f" {said.split('}', 1)[-1]} ":
            return
        if proc.poll() is not None:
            raise RuntimeError(
                f"Video phone: baresip exited (code {proc.returncode}) before "
                f"registering {aor}; last lines of {path}:\n{process.tail(path)}"
            )
        if time.monotonic() > deadline:
            answer = f"the SIP server answered {said!r}" if said else "no answer from the SIP server"
            raise RuntimeError(
                f"Video phone: no REGISTER 200 for {aor} within {timeout:g} s ({answer}); "
                f"last lines of {path}:\n{process.tail(path)}"
            )
        await asyncio.sleep(0.05)


async def serve(cfg: LabConfig, party: Party) -> None:
    binary = find_binary()
    if binary is None:
        raise RuntimeError(f"Video phone: baresip is not installed (apt-get install -y {APT_PACKAGE})")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    folder = write_config(cfg)
    shim = bind_shim(cfg)
    env = {"LD_PRELOAD": str(shim), "CALLLAB_BIND_ADDRESS": party.host} if shim else {}
    baresip_log(cfg).write_text("")
    proc = process.spawn([binary, "-f", str(folder)], baresip_log(cfg), env)
    try:
        await wait_registered(cfg, proc, REGISTER_TIMEOUT)
        log.info(
            "baresip (pid %d) registered as %s on %s; ready on %s",
            proc.pid,
            cfg.videophone_number,
            cfg.sipserver.sip_address,
            party.sip_address,
        )
        while not stop.is_set():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Video phone: baresip (pid {proc.pid}) died (code {proc.returncode}); "
                    f"last lines of {baresip_log(cfg)}:\n{process.tail(baresip_log(cfg))}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        # baresip unregisters on SIGTERM and waits out the SIP timers (32 s) when the SIP
        # server is gone first (a lab whose owner died): a second is all a lab's stop allows.
        process.stop_group(proc.pid, timeout=1.0)


def main() -> None:
    # Here, not at the top: the stack imports this module, and lab.sip.party brings pjsua2.
    from lab.sip.party import load_config, setup_logging

    cfg, party = load_config("calllab video phone (baresip)", "Video phone")
    setup_logging(cfg, party)
    try:
        asyncio.run(serve(cfg, party))
    except RuntimeError as exc:
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
