"""The Janus WebRTC gateway (Debian's `janus`) as a peer of the lab's gateway, for
bench/peers.py: its config dir, its process, and a client of its SIP plugin over the
WebSocket API. Nothing of the lab imports this: the lab runs without Janus.

Janus's own config binds every interface and loads every plugin and transport it has.
write_config() gives it a dir of its own, with only the SIP plugin and the WebSocket
transport loaded (their folders link those two libraries only), its API on a Unix socket
in that dir (no port at all), and its SIP, RTP and ICE on one loopback address no party of
the lab uses (JanusConfig.host).

Janus 1.1.2 takes only an address one of the machine's interfaces lists, and never a
loopback interface's: its ICE skips lo (with ice_enforce_list "lo" it gathers no candidate
there and libnice falls back to every other interface), and its SIP plugin, given an
address lo answers but does not list, falls back to the machine's LAN address. So Janus
runs with ifaddrshim.c preloaded: getifaddrs() shows it a single interface holding
JanusConfig.host, and nothing else to bind to.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, unix_connect

from lab import process
from lab.config import SipAccount
from lab.sip.videophone import SHIM_PACKAGES, build_preload

APT_PACKAGE = "janus"
LIBRARIES = Path("/usr/lib/x86_64-linux-gnu/janus")
#: What the bench loads of Janus, per library folder: the SIP plugin and the WebSocket transport.
LIBRARY_FOLDERS = {
    "plugins": ("libjanus_sip.so",),
    "transports": ("libjanus_websockets.so",),
    "events": (),
    "loggers": (),
}
READY_TIMEOUT = 10.0  # s for Janus to answer on its WebSocket after it starts
REPLY_TIMEOUT = 10.0  # s for Janus to answer a request
SIP_EVENT_TIMEOUT = 15.0  # s for the SIP plugin's next event of a call (the phone answers at once)
SHIM_SOURCE = Path(__file__).with_name("ifaddrshim.c")


@dataclass(frozen=True)
class JanusConfig:
    """Where Janus listens: its API on a Unix socket, SIP, RTP and ICE on `host`."""

    socket: Path  # the WebSocket API's Unix socket
    host: str = "127.0.0.20"  # a loopback address no party of any lab instance uses
    rtp_ports: tuple[int, int] = (20000, 20999)  # the WebRTC side's
    sip_rtp_ports: tuple[int, int] = (21000, 21999)  # the SIP plugin's
    debug_level: int = 3  # 0-7; 3: warnings and errors

    def __post_init__(self) -> None:
        if not self.host.startswith("127."):
            raise ValueError(f"Janus host {self.host!r}: the bench runs Janus on loopback (127.x.y.z) only")


def _jcfg(sections: dict[str, dict[str, Any]]) -> str:
    """libconfig's syntax, as Janus's .jcfg files use it."""
    lines = []
    for name, settings in sections.items():
        lines.append(f"{name}: {{")
        lines += [f"\t{key} = {json.dumps(value)}" for key, value in settings.items()]
        lines.append("}")
    return "\n".join(lines) + "\n"


def config_files(cfg: JanusConfig, folder: Path) -> dict[str, str]:
    """The text of each config file Janus reads from `folder` (file name -> text)."""
    return {
        "janus.jcfg": _jcfg(
            {
                "general": {
                    "configs_folder": str(folder),
                    "plugins_folder": str(folder / "plugins"),
                    "transports_folder": str(folder / "transports"),
                    "events_folder": str(folder / "events"),
                    "loggers_folder": str(folder / "loggers"),
                    "debug_level": cfg.debug_level,
                    "debug_timestamps": True,
                    "debug_colors": False,
                    "session_timeout": 0,  # the bench's calls end with a hangup; no keep-alives
                },
                "media": {
                    "ipv6": False,
                    "rtp_port_range": f"{cfg.rtp_ports[0]}-{cfg.rtp_ports[1]}",
                },
                "nat": {"nice_debug": False, "ice_enforce_list": cfg.host, "ignore_mdns": True},
                "events": {"broadcast": False},
            }
        ),
        "janus.plugin.sip.jcfg": _jcfg(
            {
                "general": {
                    "local_ip": cfg.host,
                    "local_media_ip": cfg.host,
                    "sdp_ip": cfg.host,
                    "keepalive_interval": 0,
                    "behind_nat": False,
                    "user_agent": "Janus SIP plugin (calllab peer bench)",
                    "register_ttl": 3600,
                    "rtp_port_range": f"{cfg.sip_rtp_ports[0]}-{cfg.sip_rtp_ports[1]}",
                    "events": False,
                }
            }
        ),
        "janus.transport.websockets.jcfg": _jcfg(
            {
                "general": {
                    "json": "compact",
                    "ws": True,
                    "ws_unix": str(cfg.socket),
                    "wss": False,
                },
                "admin": {"admin_ws": False, "admin_wss": False},
            }
        ),
    }


def write_config(cfg: JanusConfig, folder: Path, libraries: Path = LIBRARIES) -> Path:
    """Janus's config dir for the bench in `folder` (made afresh): the config files, and
    plugin and transport folders linking only the libraries the bench uses. Returns the
    main config file."""
    shutil.rmtree(folder, ignore_errors=True)
    for sub, wanted in LIBRARY_FOLDERS.items():
        (folder / sub).mkdir(parents=True)
        for name in wanted:
            (folder / sub / name).symlink_to(libraries / sub / name)
    for name, text in config_files(cfg, folder).items():
        (folder / name).write_text(text)
    return folder / "janus.jcfg"


def find_binary() -> str | None:
    return shutil.which("janus")


class JanusProcess:
    """Janus started from a config dir of write_config(), in its own process group, stopped
    by its PID."""

    def __init__(self, cfg: JanusConfig, folder: Path) -> None:
        self.cfg = cfg
        self.folder = folder
        self.log = folder.parent / "janus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "Janus is not running"
        return self.proc.pid

    async def start(self) -> JanusProcess:
        binary = find_binary()
        if binary is None:
            raise FileNotFoundError(f"Janus is not installed: apt-get install -y {APT_PACKAGE}")
        main = write_config(self.cfg, self.folder)
        shim = build_preload(SHIM_SOURCE, self.folder / "ifaddrshim.so", "Janus")
        if shim is None:
            raise FileNotFoundError(
                f"Janus needs {SHIM_SOURCE.name} built to stay on {self.cfg.host}: "
                f"apt-get install -y {SHIM_PACKAGES}"
            )
        self.log.write_text("")
        env = {"LD_PRELOAD": str(shim), "CALLLAB_IFADDR": self.cfg.host}
        self.proc = process.spawn([binary, "-C", str(main), "-F", str(self.folder)], self.log, env)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Janus exited ({self.proc.returncode}) at start; last lines of {self.log}:\n"
                    + process.tail(self.log)
                )
            try:
                ws = await _connect(self.cfg.socket)
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(
                        f"Janus did not answer on {self.cfg.socket} within {READY_TIMEOUT:g} s "
                        f"(its log: {self.log})"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            await ws.close()
            return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            process.stop_group(self.proc.pid)
        self.proc = None

    async def __aenter__(self) -> JanusProcess:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


async def _connect(socket: Path) -> ClientConnection:
    return await unix_connect(
        str(socket), "ws://janus/", subprotocols=[websockets.Subprotocol("janus-protocol")]
    )


class JanusError(RuntimeError):
    """Janus or its SIP plugin refused a request; the message says which and why."""


class JanusSession:
    """One Janus session on the WebSocket API: requests by transaction, and the events of
    its handles, in order, per handle."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.ws: ClientConnection | None = None
        self.id: int | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._transactions = (f"t{n}-{secrets.token_hex(4)}" for n in itertools.count())

    async def open(self) -> JanusSession:
        self.ws = await _connect(self.socket)
        self._reader = asyncio.ensure_future(self._read())
        created = await self.request({"janus": "create"})
        self.id = int(created["data"]["id"])
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for text in self.ws:
                msg = json.loads(text)
                kind = msg.get("janus")
                pending = self._replies.get(msg.get("transaction", ""))
                if kind == "ack" and pending is not None:
                    continue  # a plugin request's reply comes as its event
                if pending is not None and not pending.done() and kind in ("success", "error", "event"):
                    pending.set_result(msg)
                    continue
                # Later events of a request (a call's "accepted") come with its transaction too.
                handle = msg.get("sender")
                if handle is not None:
                    self._events.setdefault(int(handle), asyncio.Queue()).put_nowait(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"Janus at {self.socket} closed the connection"))

    async def request(self, body: dict[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """Send a request; its reply ("success", or a plugin request's first "event")."""
        assert self.ws is not None
        transaction = next(self._transactions)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[transaction] = future
        message = body | {"transaction": transaction}
        if self.id is not None:
            message["session_id"] = self.id
        try:
            await self.ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"Janus did not answer {body['janus']} within {timeout:g} s") from None
        finally:
            del self._replies[transaction]
        if reply.get("janus") == "error":
            error = reply.get("error", {})
            raise JanusError(f"Janus refused {body['janus']}: {error.get('code')} {error.get('reason')}")
        return reply

    def events(self, handle: int) -> asyncio.Queue[dict[str, Any]]:
        return self._events.setdefault(handle, asyncio.Queue())

    async def close(self) -> None:
        if self.ws is not None:
            if self.id is not None:
                try:
                    await self.request({"janus": "destroy"}, timeout=2.0)
                except (TimeoutError, JanusError, ConnectionError, websockets.ConnectionClosed):
                    pass  # Janus drops the session with the connection anyway
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self.ws = None


@dataclass
class SipEvent:
    """One event of the SIP plugin: its name ("calling", "progress", "accepted", "hangup",
    ...), its data, the SDP that came with it (if any) and when it arrived (time.time())."""

    event: str
    data: dict[str, Any]
    sdp: str | None
    t: float


class SipHandle:
    """A handle on janus.plugin.sip: one SIP user agent, one call at a time."""

    PLUGIN = "janus.plugin.sip"

    def __init__(self, session: JanusSession) -> None:
        self.session = session
        self.id: int | None = None

    async def attach(self) -> SipHandle:
        reply = await self.session.request({"janus": "attach", "plugin": self.PLUGIN})
        self.id = int(reply["data"]["id"])
        return self

    async def message(self, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> SipEvent:
        """A plugin request and the event that answers it; JanusError if it is an error."""
        assert self.id is not None
        request: dict[str, Any] = {"janus": "message", "handle_id": self.id, "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        event = _sip_event(await self.session.request(request))
        if event.event == "error" or "error" in event.data:
            raise JanusError(
                f"SIP plugin refused {body.get('request')}: {event.data.get('error_code')} "
                f"{event.data.get('error')}"
            )
        return event

    async def register_credentials(self, account: SipAccount) -> SipEvent:
        """Give the plugin the account's credentials without a REGISTER (the lab's gateway has
        the account registered): it answers the SIP server's digest challenges with them."""
        return await self.message(
            {
                "request": "register",
                "send_register": False,
                "username": f"sip:{account.login}@{account.domain}",
                "authuser": account.auth_name,
                "secret": account.password,
                "proxy": f"sip:{account.outbound_proxy}:{account.port}",
            }
        )

    async def next_event(self, timeout: float = SIP_EVENT_TIMEOUT) -> SipEvent:
        """The handle's next SIP plugin event (core events such as "webrtcup" are skipped)."""
        assert self.id is not None
        queue = self.session.events(self.id)
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(
                    f"Janus's SIP plugin (handle {self.id}) sent no event within {timeout:g} s"
                ) from None
            if msg.get("janus") == "event":
                return _sip_event(msg)

    async def wait_for(self, name: str, timeout: float) -> SipEvent:
        """The handle's next `name` event, the ones before it skipped; TimeoutError."""
        deadline = time.monotonic() + timeout
        while (event := await self.next_event(max(0.0, deadline - time.monotonic()))).event != name:
            pass
        return event

    async def detach(self) -> None:
        if self.id is not None:
            try:
                await self.session.request({"janus": "detach", "handle_id": self.id}, timeout=2.0)
            except (TimeoutError, JanusError, ConnectionError, websockets.ConnectionClosed):
                pass  # the session's end takes the handle with it
            self.id = None


def _sip_event(msg: dict[str, Any]) -> SipEvent:
    data = msg.get("plugindata", {}).get("data", {})
    result = data.get("result", {})
    name = result.get("event") or ("error" if "error" in data else "")
    return SipEvent(name, data | result, (msg.get("jsep") or {}).get("sdp"), time.time())
