"""The lab supervisor: start every party, wait until each answers, stop them all.

A Stack runs inside whatever process owns the lab: a test, a notebook kernel, `calllab call`,
or the small daemon `calllab up` leaves behind (`python -m lab.stack`). Each party is spawned
with PDEATHSIG, so the parties die with their owner even when it is killed outright.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from lab import process, sipserver
from lab.audio import ensure_prompts
from lab.config import HOME, INSTANCES, NARROWBAND, WIDEBAND, LabConfig, LabError, Party, requested_instance
from lab.jitterspec import JitterBufferSpec
from lab.network import control as network_control
from lab.signaling import CLIENT_MESSAGES, GATEWAY_MESSAGES, Ping, Pong
from lab.sip import videophone
from lab.sip.options import options_ping

READY_TIMEOUT = 15.0  # s for the whole lab; it is ready in well under 2 s
#: s before a party that died is started again; its next deaths wait longer
RESTART_DELAYS = (0.2, 1.0, 3.0)
MAX_RESTARTS = 5  # a party that dies this often is left down: it would only die again

log = logging.getLogger(__name__)


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def apt_hint(package: str) -> str:
    prefix = "" if os.geteuid() == 0 else "sudo "
    return f"{prefix}apt-get install -y {package}"


@dataclass
class PartyProcess:
    party: Party
    argv: list[str]
    log: Path
    role: str  # the party it is or is part of: the PSTN gateway's channels are one party
    proc: subprocess.Popen[bytes] | None = None
    #: how each earlier process of this party ended: {"pid", "how", "t", "log", "restarted"}
    deaths: list[dict[str, Any]] = field(default_factory=list)
    keep_down: bool = False  # killed on purpose (Stack.kill): not restarted until restart()


def how_it_ended(returncode: int) -> str:
    """Popen's return code in words: `exit code 1`, `signal 9 (SIGKILL)`."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown"
    return f"signal {-returncode} ({name})"


class InstanceTaken(LabError):
    """Another lab (of this user or another) has this instance, or something else holds one
    of its addresses: the first free instance is the next one."""


def _check_free(party: Party, host: str, port: int, kind: int) -> None:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
        raise InstanceTaken(
            f"{party.name}: address {host}:{port}/{proto} is already in use ({exc.strerror}); "
            "is another lab running? `calllab status` shows it, `calllab down` stops it"
        ) from None
    finally:
        sock.close()


def check_addresses(cfg: LabConfig) -> None:
    """InstanceTaken when another process holds one of the lab's addresses."""
    networks = cfg.networks.values()
    for party in cfg.processes:
        port = cfg.network_control_port if party in networks else party.sip_port
        _check_free(party, party.host, port, socket.SOCK_DGRAM)
    _check_free(cfg.gateway, cfg.gateway.host, cfg.ws_port, socket.SOCK_STREAM)
    for phone in (*cfg.phone_pool, cfg.phone2):
        _check_free(phone, phone.host, cfg.control_port(phone), socket.SOCK_STREAM)


def claim(instance: int) -> socket.socket:
    """Hold lab `instance` for as long as the socket is open: a name in Linux's abstract
    socket namespace, which every user of the machine shares and the kernel frees when its
    holder dies (no lock file to go stale, none another user cannot open). Closes the race
    of two labs starting at once, before either has bound its addresses."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(f"\0calllab-instance-{instance}")
    except OSError:
        sock.close()
        raise InstanceTaken(f"lab instance {instance} is taken by another lab on this machine") from None
    return sock


async def gateway_ping(url: str, timeout: float = 1.0, worker_socket: Path | None = None) -> Pong:
    """The gateway's answer on its signaling socket (active_calls, media_ports), through its
    front (ws_port) or straight from one worker (its `worker_socket`); raises when it does not
    answer, or answers something else."""
    async with asyncio.timeout(timeout):
        connecting = (
            websockets.unix_connect(str(worker_socket), url) if worker_socket else websockets.connect(url)
        )
        async with connecting as ws:
            await ws.send(CLIENT_MESSAGES.encode(Ping()))
            reply = GATEWAY_MESSAGES.decode(await ws.recv())
    if not isinstance(reply, Pong):
        raise ValueError(f"the gateway answered a ping with {reply.KIND!r}")
    return reply


async def answers(cfg: LabConfig, party: Party, timeout: float) -> bool:
    """Whether a party answers now: SIP OPTIONS, or the gateway's WebSocket ping."""
    try:
        if party is cfg.gateway:
            await gateway_ping(cfg.ws_url, timeout=timeout)
        elif party in cfg.gateway_pool:
            await gateway_ping(cfg.ws_url, timeout=timeout, worker_socket=cfg.worker_socket(party))
        elif party is cfg.videophone:
            return await videophone.registered(cfg, timeout)
        elif party in cfg.networks.values():
            address = (party.host, cfg.network_control_port)
            if not isinstance(
                await network_control.arequest(
                    party.name, address, network_control.Ping(), timeout, source=cfg.browser.host
                ),
                network_control.Pong,
            ):
                return False
        else:
            await options_ping(party.host, party.sip_port, timeout=timeout, source=cfg.browser.host)
    except (
        TimeoutError,
        OSError,
        ValueError,
        network_control.NetworkUnreachable,
        websockets.InvalidHandshake,
        websockets.ConnectionClosed,
    ):
        return False
    return True


def take_instance(cfg: LabConfig, first_free: bool) -> tuple[LabConfig, socket.socket]:
    """cfg's instance, claimed and its addresses free; with `first_free`, the first instance
    from cfg's on that is (cfg moved there). InstanceTaken or LabError says why not."""
    for instance in INSTANCES[cfg.instance :] if first_free else (cfg.instance,):
        moved = cfg.at(instance)
        try:
            held = claim(instance)
        except InstanceTaken:
            if first_free:
                continue
            raise
        try:
            check_addresses(moved)
        except InstanceTaken:
            held.close()
            if first_free:
                continue
            raise
        return moved, held
    raise LabError(f"every lab instance from {cfg.instance} to {INSTANCES.stop - 1} is taken")


class Stack:
    """The lab of `cfg`, at cfg's instance, or with `first_free` at the first free instance from
    it on. Without a cfg: at the instance CALLLAB_INSTANCE names, else at the first free one
    (0 when no other lab runs on the machine)."""

    def __init__(self, cfg: LabConfig | None = None, *, first_free: bool | None = None) -> None:
        if cfg is None:
            requested = requested_instance()
            cfg = LabConfig().at(requested or 0)
            first_free = requested is None if first_free is None else first_free
        self.cfg = cfg.with_password()
        self.first_free = bool(first_free)
        self._claim: socket.socket | None = None
        self.parties: list[PartyProcess] = []
        self.started_at: float | None = None
        self.ready_s: float | None = None
        self._exit_watches: dict[int, int] = {}  # pid -> its pidfd, readable once it exits
        self._restarts: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def state_path(self) -> Path:
        return self.cfg.run_dir / "stack.json"

    def _plan(self) -> list[PartyProcess]:
        cfg, run = self.cfg, self.cfg.run_dir

        def pjsua_party(module: str, party: Party, role: Party) -> PartyProcess:
            argv = [sys.executable, "-m", module, "--party", party.name, "--config", str(run / "lab.json")]
            return PartyProcess(party, argv, run / f"{_slug(party.name)}.log", role.name)

        return [
            PartyProcess(
                cfg.sipserver,
                sipserver.command(cfg, run / "kamailio.cfg"),
                run / "sip-server.log",
                cfg.sipserver.name,
            ),
            *(pjsua_party("lab.sip.phone", phone, cfg.phone) for phone in cfg.phone_pool),
            pjsua_party("lab.sip.phone", cfg.phone2, cfg.phone2),
            *(pjsua_party("lab.sip.pstn", channel, cfg.pstn) for channel in cfg.pstn_channels),
            pjsua_party("lab.gateway.front", cfg.gateway, cfg.gateway),
            *(pjsua_party("lab.gateway.server", worker, cfg.gateway) for worker in cfg.gateway_pool),
            *(pjsua_party("lab.network.party", network, network) for network in cfg.networks.values()),
            # Without baresip the lab runs without its video phone (preflight says so).
            *(
                [pjsua_party("lab.sip.videophone", cfg.videophone, cfg.videophone)]
                if videophone.find_binary()
                else []
            ),
        ]

    def preflight(self) -> None:
        """What the lab needs is there, and its instance is taken (held until stop())."""
        cfg = self.cfg
        try:
            JitterBufferSpec.parse(cfg.sip_jitter_buffer)
        except ValueError as exc:
            raise LabError(f"sip_jitter_buffer: {exc}") from None
        if cfg.audio_rate not in (NARROWBAND, WIDEBAND):
            raise LabError(
                f"audio_rate {cfg.audio_rate}: {NARROWBAND} (narrowband) or {WIDEBAND} (wideband) Hz"
            )
        if sipserver.find_binary() is None:
            raise LabError(f"the SIP server needs Kamailio; install it: {apt_hint(sipserver.APT_PACKAGE)}")
        if shutil.which("espeak-ng") is None and not (cfg.prompts_dir / "phone.wav").exists():
            raise LabError(f"the speech prompts need espeak-ng; install it: {apt_hint('espeak-ng')}")
        if videophone.find_binary() is None:
            log.warning(
                "no video phone: baresip is not installed (%s); calls to %s fail with 480",
                apt_hint(videophone.APT_PACKAGE),
                cfg.videophone_number,
            )
        if self._claim is None:
            self.cfg, self._claim = take_instance(cfg, self.first_free)

    async def start(self, timeout: float = READY_TIMEOUT) -> Stack:
        """Start every party and return once each answers; LabError says who did not."""
        self.preflight()
        atexit.register(self.stop)
        try:
            cfg = self.cfg
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(cfg.run_dir, 0o700)
            ensure_prompts(cfg.prompts_dir, cfg.audio_rate)
            cfg.save(cfg.run_dir / "lab.json")
            kamailio_cfg = cfg.run_dir / "kamailio.cfg"
            kamailio_cfg.touch(mode=0o600)
            kamailio_cfg.write_text(
                sipserver.render_config(
                    cfg, {cfg.login: cfg.password, cfg.videophone_number: cfg.videophone_password}
                )
            )
            self.started_at = time.monotonic()
            self.parties = self._plan()
            for p in self.parties:
                p.log.write_text("")
                self._spawn(p)
            await asyncio.gather(*(self._wait_ready(p, timeout) for p in self.parties))
        except BaseException:
            self.stop()
            raise
        self.ready_s = time.monotonic() - self.started_at
        self._write_state()
        return self

    # --- supervision: a party that dies is reaped at once, reported and started again -----
    def _spawn(self, p: PartyProcess) -> None:
        p.proc = process.spawn(p.argv, p.log)
        pidfd = os.pidfd_open(p.proc.pid)
        self._exit_watches[p.proc.pid] = pidfd
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(pidfd, self._exited, p, p.proc)

    def _unwatch(self, pid: int) -> None:
        pidfd = self._exit_watches.pop(pid, None)
        if pidfd is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(pidfd)
        os.close(pidfd)

    def _exited(self, p: PartyProcess, proc: subprocess.Popen[bytes]) -> None:
        self._unwatch(proc.pid)
        returncode = proc.wait()  # reaps it: no zombie
        if p.keep_down:
            return  # Stack.kill: the caller knows
        restart = len(p.deaths) < MAX_RESTARTS
        death = {
            "pid": proc.pid,
            "how": how_it_ended(returncode),
            "t": time.time(),
            "log": process.tail(p.log),
            "restarted": restart,
        }
        p.deaths.append(death)
        log.warning(
            "%s (pid %d) died: %s; %s; last lines of %s:\n%s",
            p.party.name,
            proc.pid,
            death["how"],
            "restarting it" if restart else f"left down after {MAX_RESTARTS} restarts",
            p.log,
            death["log"],
        )
        self._write_state()
        if restart:
            task = asyncio.ensure_future(self._restart_after_death(p))
            self._restarts.add(task)
            task.add_done_callback(self._restart_done)

    async def _restart_after_death(self, p: PartyProcess) -> None:
        await asyncio.sleep(RESTART_DELAYS[min(len(p.deaths), len(RESTART_DELAYS)) - 1])
        if p.keep_down or p not in self.parties:
            return
        self._spawn(p)
        await self._wait_ready(p, READY_TIMEOUT, time.monotonic())
        self._write_state()

    def _restart_done(self, task: asyncio.Task[None]) -> None:
        self._restarts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("restarting a party failed: %s", task.exception())

    async def _wait_ready(self, p: PartyProcess, timeout: float, since: float | None = None) -> None:
        assert p.proc is not None and self.started_at is not None
        deadline = (since or self.started_at) + timeout
        while True:
            if p.proc.poll() is not None:
                raise LabError(
                    f"{p.party.name} exited with code {p.proc.returncode} while starting; "
                    f"last lines of {p.log}:\n{process.tail(p.log)}"
                )
            if await answers(self.cfg, p.party, timeout=0.3):
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"{p.party.name} did not answer on {p.party.host} within {timeout:g} s; "
                    f"last lines of {p.log}:\n{process.tail(p.log)}"
                )
            await asyncio.sleep(0.02)

    def processes(self, name: str) -> list[PartyProcess]:
        """The processes of the party `name` (all channels of the PSTN gateway), or of one channel."""
        found = [p for p in self.parties if name in (p.role, p.party.name)]
        if not found:
            raise LabError(f"no party {name!r} in this lab")
        return found

    def kill(self, name: str) -> None:
        """Kill a party outright (SIGKILL): a crash, as far as the others can tell. It stays
        down until restart(); a party that dies by itself is restarted at once."""
        for p in self.processes(name):
            p.keep_down = True
            if p.proc is not None:
                if p.proc.poll() is None:
                    process.kill_group(p.proc.pid, timeout=2)
                self._unwatch(p.proc.pid)

    async def restart(self, name: str, timeout: float = READY_TIMEOUT) -> None:
        """Start a party again (after kill) and wait until it answers."""
        self.kill(name)
        again = self.processes(name)
        for p in again:
            p.keep_down = False
            self._spawn(p)
        since = time.monotonic()
        await asyncio.gather(*(self._wait_ready(p, timeout, since) for p in again))
        self._write_state()

    def _write_state(self) -> None:
        state = {
            "owner": os.getpid(),
            "instance": self.cfg.instance,
            "started": time.time(),
            "parties": {
                p.party.name: {
                    "pid": p.proc.pid if p.proc else None,
                    "role": p.role,
                    "address": p.party.sip_address,
                    "log": str(p.log),
                    "deaths": p.deaths,
                }
                for p in self.parties
            },
        }
        self.state_path.write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        """Stop every party this stack started (by PID, whole process group), all at once."""
        for task in self._restarts:
            task.cancel()
        for pid in list(self._exit_watches):
            self._unwatch(pid)
        process.stop_groups(
            [p.proc.pid for p in self.parties if p.proc is not None and p.proc.poll() is None]
        )
        for p in self.parties:
            if p.proc is not None:
                with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
                    p.proc.wait(timeout=1)
        self.parties = []
        with contextlib.suppress(FileNotFoundError):
            if json.loads(self.state_path.read_text()).get("owner") == os.getpid():
                self.state_path.unlink()
        if self._claim is not None:
            self._claim.close()
            self._claim = None
        atexit.unregister(self.stop)

    async def __aenter__(self) -> Stack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


# --- a lab that outlives the command that started it (`calllab up`) ---------------------


def read_state(cfg: LabConfig) -> dict[str, Any] | None:
    """The running lab's state, or None when no live lab owns this home."""
    path = cfg.run_dir / "stack.json"
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not process.alive(int(state.get("owner", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


def role_pids(state: dict[str, Any], role: str) -> list[int]:
    """The PIDs of a party's processes in a lab's state (read_state): the gateway's front and
    workers, the PSTN gateway's channels, the phone's pool."""
    return [
        entry["pid"]
        for name, entry in state["parties"].items()
        if entry.get("pid") and role in (name, entry.get("role"))
    ]


def running_labs(home: Path = HOME) -> list[LabConfig]:
    """The configs of every lab running under `home` (the labs its user started), by instance."""
    labs = []
    for run_dir in (home / ".calllab").glob("run*/"):
        try:
            cfg = LabConfig.load(run_dir / "lab.json")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if read_state(cfg) is not None:
            labs.append(cfg)
    return sorted(labs, key=lambda c: c.instance)


def running_config(cfg: LabConfig | None = None) -> LabConfig | None:
    """The config (with its password) of the running lab a command means: cfg's (its home and
    instance); without cfg, the instance CALLLAB_INSTANCE names, else the first of the labs
    running under this home: a user's notebooks and commands find the lab that user started."""
    if cfg is None:
        instance = requested_instance()
        if instance is None:
            return next(iter(running_labs()), None)
        cfg = LabConfig().at(instance)
    if read_state(cfg) is None:
        return None
    return LabConfig.load(cfg.run_dir / "lab.json")


def chosen_config() -> LabConfig:
    """The lab a command is about, running or not: running_config(), else the requested
    instance's (instance 0 when none is)."""
    return running_config() or LabConfig().at(requested_instance() or 0)


def _address(cfg: LabConfig, party: Party) -> str:
    if party is cfg.gateway:
        return f"{party.host} ws:{cfg.ws_port}"
    if party in cfg.phone_pool:
        return f"{party.sip_address} control:{cfg.control_port(party)}"
    if party in cfg.networks.values():
        return f"{party.host} control:{cfg.network_control_port}/udp"
    return party.sip_address


async def health(cfg: LabConfig) -> list[dict[str, Any]]:
    """Every party with its address, PID and whether it answers now."""
    state = read_state(cfg) or {"parties": {}}
    rows = []
    for party in cfg.processes:
        entry = state["parties"].get(party.name, {})
        pid = entry.get("pid")
        healthy = await answers(cfg, party, timeout=0.5)
        rows.append(
            {
                "party": party.name,
                "deaths": entry.get("deaths", []),
                "address": _address(cfg, party),
                "pid": pid if pid and process.alive(pid) else None,
                "healthy": healthy,
            }
        )
    return rows


def start_daemon(cfg: LabConfig, timeout: float = READY_TIMEOUT + 5) -> dict[str, Any]:
    """Start a detached lab owner; returns its state once every party is ready."""
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    log = cfg.run_dir / "stack.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lab.stack"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "CALLLAB_HOME": str(cfg.home)},
        )
    assert proc.stdin is not None and proc.stdout is not None
    with proc.stdin:  # the config on a pipe: a password given in it never shows in `ps`
        proc.stdin.write(cfg.to_json().encode())
    line = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline and not line.endswith(b"\n"):
        chunk = proc.stdout.read()
        if chunk:
            line += chunk
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.02)
    proc.stdout.close()
    try:
        reply: dict[str, Any] = json.loads(line or b"{}")
    except ValueError:
        reply = {}
    if "error" in reply or not reply:
        if proc.poll() is None:
            process.stop_group(proc.pid)
        raise LabError(reply.get("error") or f"the lab did not start within {timeout:g} s; see {log}")
    return reply


def stop_daemon(cfg: LabConfig, timeout: float = 10.0) -> bool:
    """Stop the lab `calllab up` started; False when none was running."""
    state = read_state(cfg)
    if state is None:
        return False
    owner = int(state["owner"])
    os.kill(owner, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process.alive(owner) and time.monotonic() < deadline:
        time.sleep(0.05)
    if process.alive(owner):
        os.kill(owner, signal.SIGKILL)  # its parties get SIGTERM from the kernel (PDEATHSIG)
    return True


async def _serve() -> None:
    # The config comes on stdin (start_daemon); a lab asked for no instance takes the first free.
    stack = Stack(LabConfig.from_json(sys.stdin.read()), first_free=requested_instance() is None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stack.start()
    except (LabError, OSError) as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return
    print(
        json.dumps({"ready_s": stack.ready_s, "owner": os.getpid(), "instance": stack.cfg.instance}),
        flush=True,
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    # start_daemon opened the log before the instance was chosen: from now on, its own.
    own_log = os.open(stack.cfg.run_dir / "stack.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(own_log, 2)
    try:
        await stop.wait()
    finally:
        stack.stop()


if __name__ == "__main__":
    asyncio.run(_serve())
