"""The one typed configuration of the lab: party addresses, ports, the SIP account, policies.

Every other module takes its addresses from here, so a capture filter, a ladder label and a
process's bind address can never disagree.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.sip.codecs import LEG_CODECS


def _home() -> Path:
    """CALLLAB_HOME, else the checkout, else ~/calllab: a shared install its user cannot write
    to (one JupyterHub for a class) gives every user state and captures of their own."""
    if "CALLLAB_HOME" in os.environ:
        return Path(os.environ["CALLLAB_HOME"])
    checkout = Path(__file__).resolve().parents[1]
    return checkout if os.access(checkout, os.W_OK) else Path.home() / "calllab"


#: Where the lab keeps its state (run/), speech prompts and captures.
HOME = _home()

#: The labs one machine can run at once: lab N's parties are on 127.0.N.x (every 127/8
#: address is local on Linux), so two labs never share an address, a port or a capture.
INSTANCES = range(256)

#: Numbers the SIP server routes to the PSTN/GSM gateway: Russian mobile numbers in the two
#: ways people dial them. POSIX ERE, because Kamailio matches it.
MOBILE_NUMBER_RE = r"^([+]7[0-9]{10}|8[0-9]{10})$"

#: The two audio bands a lab runs at (Hz): the telephone's, and wideband ("HD voice").
NARROWBAND = 8000
WIDEBAND = 16000

#: Calls one pjsua2 process holds (the wheel's PJSUA_MAX_CALLS, lab.sip.endpoint.MAX_CALLS;
#: the config imports no pjsua2). A party that must hold more is a pool of such processes.
CALLS_PER_PROCESS = 4
#: A call hunts the PSTN channels, one SIP branch each, and Kamailio forks 30 at most.
MAX_CALLS_AT_ONCE = 30


def default_calls() -> int:
    """Calls at once a lab has room for unless told: 4 a core (2 cores: 8). Two cores' CPU
    carries about 4 Opus or 8 G.711 calls with their quality (README, "Calls at once")."""
    return CALLS_PER_PROCESS * (os.cpu_count() or 1)


def host_at(host: str, instance: int) -> str:
    """`host` in lab `instance`: a loopback address gets the instance as its third byte
    (127.0.0.5 -> 127.0.2.5); any other address (a real SIP server) stays."""
    parts = host.split(".")
    if len(parts) != 4 or parts[0] != "127":
        return host
    return ".".join((parts[0], parts[1], str(instance), parts[3]))


class LabError(RuntimeError):
    """Something stops the lab from starting; the message says what and how to fix it."""


def requested_instance() -> int | None:
    """The instance CALLLAB_INSTANCE (or the CLI's --instance) asks for; None: any free one."""
    text = os.environ.get("CALLLAB_INSTANCE", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) not in INSTANCES:
        raise LabError(
            f"CALLLAB_INSTANCE={text!r}: a lab instance, {INSTANCES.start} to {INSTANCES.stop - 1}"
        )
    return int(text)


@dataclass(frozen=True)
class Party:
    """One process of the lab and the addresses it owns."""

    name: str
    host: str
    sip_port: int
    rtp_port: int  # first port of this party's RTP range
    rtp_port_count: int = 100

    @property
    def sip_address(self) -> str:
        return f"{self.host}:{self.sip_port}"

    @property
    def relay_ports(self) -> range:
        """The upper half of the RTP range: a gateway worker's relays (audio passed through
        or transcoded a packet at a time, video) bind there, pjsua's streams below."""
        return range(self.rtp_port + self.rtp_port_count // 2, self.rtp_port + self.rtp_port_count)


@dataclass(frozen=True)
class SipAccount:
    """The seed Phone UI's login form."""

    login: str
    auth_name: str
    password: str = field(repr=False)
    domain: str
    outbound_proxy: str
    port: int = 5060


@dataclass(frozen=True)
class PhonePolicy:
    """How the lab's mobile phone treats a call: `answer` after `answer_after` seconds,
    `busy` (486), `reject` (603), `never` (rings until the caller gives up) or `manual`
    (rings until someone answers or rejects it from the phone's control socket)."""

    action: str = "answer"
    answer_after: float = 1.0

    ACTIONS = ("answer", "busy", "reject", "never", "manual")

    @classmethod
    def parse(cls, text: str) -> PhonePolicy:
        """`after:1.5`, `answer`, `busy`, `reject`, `never`."""
        text = text.strip().lower()
        if text.startswith("after:"):
            try:
                delay = float(text.split(":", 1)[1])
            except ValueError:
                raise ValueError(f"answer policy {text!r}: 'after:' needs seconds") from None
            if not 0 <= delay <= 300:
                raise ValueError(f"answer policy {text!r}: delay must be 0..300 s")
            return cls("answer", delay)
        if text in cls.ACTIONS:
            return cls(text)
        raise ValueError(f"answer policy {text!r}: use after:S, answer, busy, reject, never or manual")

    def header_value(self) -> str:
        return f"after:{self.answer_after:g}" if self.action == "answer" else self.action


@dataclass(frozen=True)
class LabConfig:
    browser: Party = Party("Browser", "127.0.0.1", 0, 0, 0)
    gateway: Party = Party("Gateway", "127.0.0.2", 5060, 20000)
    sipserver: Party = Party("SIP server", "127.0.0.3", 5060, 0, 0)
    #: The PSTN/GSM gateway as one box; its channels (pstn_channels) are the processes.
    pstn: Party = Party("PSTN gateway", "127.0.0.4", 5060, 30000)
    pstn_channel_count: int = field(
        default_factory=default_calls
    )  # like a multi-SIM GSM gateway; one call a channel
    #: Who may call the PSTN gateway besides its SIP server, the phones' mobile network and
    #: its own channels: a real GSM gateway takes calls only from the server it trusts.
    pstn_trusted_hosts: tuple[str, ...] = ()
    phone: Party = Party("Mobile phone", "127.0.0.5", 5060, 40000)
    phone2: Party = Party("Mobile phone 2", "127.0.0.6", 5060, 41000)  # a transfer target
    #: A SIP softphone with video (baresip, lab.sip.videophone), registered on the SIP server
    #: as the user videophone_number: the SIP server reaches it by its registrar.
    videophone: Party = Party("Video phone", "127.0.0.10", 5060, 42000)
    videophone_number: str = "1001"
    videophone_password: str = field(default="", repr=False)  # generated per lab run when empty
    videophone_control_port: int = 4444  # baresip's ctrl_tcp, on videophone.host
    #: The networks a leg's media crosses when a call asks for an impairment on it: each is a
    #: relay party of its own (lab.network.party), between the two parties of its leg.
    internet: Party = Party("Internet", "127.0.0.7", 0, 0, 0)  # browser <-> gateway
    core_network: Party = Party("Core network", "127.0.0.8", 0, 0, 0)  # gateway <-> PSTN gateway
    mobile_network: Party = Party("Mobile network", "127.0.0.9", 0, 0, 0)  # PSTN gateway <-> phone
    network_control_port: int = 7070  # UDP, on each network's host
    phone_number: str = "+79990000001"  # the mobile phone's own number: its caller id when it dials
    ws_port: int = 8089  # gateway's WebSocket signaling, on gateway.host
    #: The gateway's SIP workers behind its WebSocket endpoint (gateway_pool), the mobile
    #: phone's processes (phone_pool): pjsua2 processes of CALLS_PER_PROCESS calls each.
    gateway_workers: int = field(default_factory=lambda: default_calls() // CALLS_PER_PROCESS)
    phone_workers: int = field(default_factory=lambda: default_calls() // CALLS_PER_PROCESS)
    phone_control_port: int = 8090  # the phone's control WebSocket, on phone.host
    login: str = "VKP009"
    password: str = field(default="", repr=False)  # generated per lab run when empty
    mobile_number_re: str = MOBILE_NUMBER_RE
    phone_policy: PhonePolicy = PhonePolicy()
    #: Phone answer policy per dialled number, e.g. {"+79990000486": "busy"}.
    number_policies: dict[str, str] = field(default_factory=dict)
    mobile_codec: str = "GSM"  # the PSTN gateway <-> phone leg, as a mobile network would
    #: What the PSTN gateway takes from the SIP side (lab.sip.codecs names): every codec of
    #: the pjsua2 wheel; a real GSM gateway may take only G.711 and GSM (then 488 for others).
    pstn_codecs: tuple[str, ...] = LEG_CODECS["sip"]
    no_answer_timeout: float = 30.0  # s the PSTN gateway lets a phone ring before 480
    media_timeout: float = 3.0  # s without RTP after which a gateway ends the call
    #: The pjsua2 parties' jitter buffer (lab.jitterspec): pjsua2 sets it per process, so it
    #: is the lab's, from its start. One 20 ms frame while packets come on time: each SIP
    #: hop then adds no more than loopback needs.
    sip_jitter_buffer: str = "adaptive:20-80"
    #: The lab's audio band, in Hz: 8000 (narrowband, the telephone's) or 16000 (wideband,
    #: "HD voice"). pjsua2 mixes every call of a process at one clock rate, so the band is the
    #: lab's, from its start: the SIP parties' bridges, the gateway's frames, the prompts and
    #: the recordings run at it. Wideband lets G.722 and Speex 16 carry 7 kHz end to end and
    #: costs the SIP parties more CPU (README, "Wideband").
    audio_rate: int = NARROWBAND
    #: A browser call whose legs can both carry one G.711 codec (the browser chose PCMU or
    #: PCMA, the call asked no other SIP codec) has its audio relayed untouched by the
    #: gateway (lab.gateway.passthrough), as Janus does, and an Opus call whose SIP leg is
    #: G.711 is transcoded a packet at a time (lab.gateway.opusrelay); False carries every
    #: call through the conference bridge (`calllab up --transcode`).
    passthrough: bool = True
    #: captures/ keeps the newest calls (capture, report, recordings) within both limits;
    #: older ones are removed after each call and by `calllab clean`. A call is ~1 MB.
    keep_calls: int = 200
    keep_mb: float = 1000.0
    home: Path = HOME
    #: Which of the machine's labs this is (INSTANCES): set by at(), never by hand, so the
    #: addresses and the instance always agree. 0 is the lab on 127.0.0.x.
    instance: int = 0

    #: Numbers the PSTN gateway connects to the second phone; every other one rings the first.
    phone2_numbers: tuple[str, ...] = ("+79990000002", "89990000002")

    def at(self, instance: int) -> LabConfig:
        """This lab as instance `instance`: every party on 127.0.<instance>.x, its state in
        its own run dir, its calls in its own captures dir; ports stay (the addresses differ)."""
        if instance not in INSTANCES:
            raise ValueError(f"lab instance {instance}: {INSTANCES.start} to {INSTANCES.stop - 1}")
        moved: dict[str, Any] = {
            f.name: dataclasses.replace(party, host=host_at(party.host, instance))
            for f in dataclasses.fields(self)
            if isinstance(party := getattr(self, f.name), Party)
        }
        return dataclasses.replace(self, instance=instance, **moved)

    @property
    def _instance_suffix(self) -> str:
        return f"-{self.instance}" if self.instance else ""

    @property
    def wideband(self) -> bool:
        return self.audio_rate == WIDEBAND

    @property
    def parties(self) -> tuple[Party, ...]:
        """In call-path order."""
        return (
            self.browser,
            self.internet,
            self.gateway,
            self.sipserver,
            self.core_network,
            self.pstn,
            self.mobile_network,
            self.phone,
            self.phone2,
            self.videophone,
        )

    @property
    def networks(self) -> dict[str, Party]:
        """The network party of each leg: browser, sip, mobile."""
        return {"browser": self.internet, "sip": self.core_network, "mobile": self.mobile_network}

    @property
    def pstn_channels(self) -> tuple[Party, ...]:
        """The PSTN gateway's channels, a process each (pjsua2 holds 4 calls per process: a
        call's two legs plus a transfer's third), on the gateway's host: SIP ports 5060, 5061..."""
        return self._pool(self.pstn, self.pstn_channel_count, "ch")

    @property
    def gateway_pool(self) -> tuple[Party, ...]:
        """The gateway's workers, a pjsua2 process each, on its host: SIP ports 5060, 5061...
        and RTP ranges one after the other; its WebSocket endpoint (the gateway party itself,
        lab.gateway.front) hands each client connection to one of them."""
        return self._pool(self.gateway, self.gateway_workers, "w")

    @property
    def phone_pool(self) -> tuple[Party, ...]:
        """The mobile phone's processes: the first is the phone (its control socket is
        phone_control_port), the others take its calls on the next SIP ports, control ports
        and RTP ranges. PSTN channel i gives its calls to process i mod N (phone_for)."""
        return (self.phone, *self._pool(self.phone, self.phone_workers, "w")[1:])

    @staticmethod
    def _pool(box: Party, count: int, suffix: str) -> tuple[Party, ...]:
        """`count` processes of party `box`: consecutive SIP ports and RTP ranges."""
        return tuple(
            Party(
                f"{box.name} {suffix}{i + 1}",
                box.host,
                box.sip_port + i,
                box.rtp_port + i * box.rtp_port_count,
                box.rtp_port_count,
            )
            for i in range(count)
        )

    def carrying(self, calls: int) -> LabConfig:
        """This lab sized to carry `calls` at once: that many PSTN channels, and gateway
        workers and phone processes of CALLS_PER_PROCESS calls each."""
        if not 1 <= calls <= MAX_CALLS_AT_ONCE:
            raise ValueError(f"calls at once: 1 to {MAX_CALLS_AT_ONCE}, not {calls}")
        processes = -(-calls // CALLS_PER_PROCESS)
        return dataclasses.replace(
            self, pstn_channel_count=calls, gateway_workers=processes, phone_workers=processes
        )

    @property
    def calls_at_once(self) -> int:
        """Calls the lab carries at once: its narrowest pool's."""
        return min(
            self.gateway_workers * CALLS_PER_PROCESS,
            self.pstn_channel_count,
            self.phone_workers * CALLS_PER_PROCESS,
        )

    @property
    def processes(self) -> tuple[Party, ...]:
        """Every party the lab runs (the PSTN gateway as its channels, the gateway and the
        phone with their pools), in call-path order."""
        return (
            self.gateway,
            *self.gateway_pool,
            self.sipserver,
            *self.pstn_channels,
            *self.phone_pool,
            self.phone2,
            self.videophone,
            *self.networks.values(),
        )

    def process(self, name: str) -> Party:
        """The running party called `name`; KeyError names the ones there are."""
        found = next((p for p in self.processes if p.name == name), None)
        if found is None:
            raise KeyError(f"no party {name!r}; the lab runs {', '.join(p.name for p in self.processes)}")
        return found

    @property
    def phones(self) -> tuple[Party, ...]:
        return (self.phone, self.phone2)

    def phone_for(self, number: str, channel: Party | None = None) -> Party:
        """The phone process a call to `number` goes to: the second phone's numbers to it, the
        others to the mobile phone's pool, the process of PSTN channel i's calls i mod N (the
        first when no channel is named)."""
        if number in self.phone2_numbers:
            return self.phone2
        if channel not in self.pstn_channels:
            return self.phone
        pool = self.phone_pool
        return pool[self.pstn_channels.index(channel) % len(pool)]

    def control_url(self, phone: Party) -> str:
        return f"ws://{phone.host}:{self.control_port(phone)}/"

    def control_port(self, phone: Party) -> int:
        """A phone process's control socket: phone_control_port, plus its place in the pool."""
        pool = self.phone_pool
        return self.phone_control_port + (pool.index(phone) if phone in pool else 0)

    @property
    def run_dir(self) -> Path:
        """.calllab/run for instance 0, .calllab/run-N for instance N: its pid and state files."""
        return self.home / ".calllab" / f"run{self._instance_suffix}"

    def worker_socket(self, worker: Party) -> Path:
        """The Unix socket a gateway worker takes its client connections on."""
        return self.run_dir / f"{worker.name.lower().replace(' ', '-')}.sock"

    @property
    def prompts_dir(self) -> Path:
        """The speech prompts at the lab's audio rate."""
        folder = self.home / ".calllab" / "prompts"
        return folder if self.audio_rate == NARROWBAND else folder / str(self.audio_rate)

    @property
    def captures_dir(self) -> Path:
        """captures/ for instance 0, captures-N/ for instance N: each lab keeps (and prunes)
        only its own calls."""
        return self.home / f"captures{self._instance_suffix}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.gateway.host}:{self.ws_port}/"

    @property
    def phone_control_url(self) -> str:
        return self.control_url(self.phone)

    def account(self) -> SipAccount:
        """The lab's own user account on its own SIP server."""
        return SipAccount(
            login=self.login,
            auth_name=self.login,
            password=self.password,
            domain=self.sipserver.host,
            outbound_proxy=self.sipserver.host,
            port=self.sipserver.sip_port,
        )

    def with_password(self) -> LabConfig:
        return dataclasses.replace(
            self,
            password=self.password or secrets.token_urlsafe(12),
            videophone_password=self.videophone_password or secrets.token_urlsafe(12),
        )

    def name_at(self, host: str) -> str:
        """The party at a lab address ("PSTN gateway" for any of its channels), or the address."""
        return next((p.name for p in self.parties if p.host == host), host)

    def policy_for(self, number: str) -> PhonePolicy:
        text = self.number_policies.get(number)
        return PhonePolicy.parse(text) if text else self.phone_policy

    # Serialisation: child processes get the config as a 0600 JSON file in run_dir.
    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["home"] = str(self.home)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> LabConfig:
        data = json.loads(text)
        for key in (
            "browser",
            "gateway",
            "sipserver",
            "pstn",
            "phone",
            "phone2",
            "videophone",
            "internet",
            "core_network",
            "mobile_network",
        ):
            data[key] = Party(**data[key])
        for key in ("phone2_numbers", "pstn_trusted_hosts", "pstn_codecs"):
            data[key] = tuple(data[key])
        data["phone_policy"] = PhonePolicy(**data["phone_policy"])
        data["home"] = Path(data["home"])
        return cls(**data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.to_json())

    @classmethod
    def load(cls, path: Path) -> LabConfig:
        return cls.from_json(path.read_text())


def lab_of_capture(capture: Path) -> LabConfig:
    """The lab whose captures dir holds `capture` (captures-2/ -> instance 2), whose party
    names fit its addresses; instance 0's for a capture from anywhere else."""
    suffix = capture.resolve().parent.name.removeprefix("captures-")
    instance = int(suffix) if suffix.isdigit() and int(suffix) in INSTANCES else 0
    return LabConfig().at(instance)


#: The browser leg's codecs by the lab's names (lab.webrtc.CODECS maps them to aiortc's; it
#: imports aiortc, which the CLI starts without).
BROWSER_CODECS = ("opus", "pcmu", "pcma", "g722")

CALL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

#: SIP headers the lab's own parties pass along a call: the browser's call id (so every party
#: files its recordings under it) and the phone's answer policy for this one call. An external
#: SIP server forwards or drops them; nothing depends on them beyond the lab.
CALL_HEADER = "X-Calllab-Call"
ANSWER_HEADER = "X-Calllab-Answer"
#: What the network does to this call's media, per leg and direction (lab.network.legs).
IMPAIR_HEADER = "X-Calllab-Impair"
#: The codec the call asks for on each SIP leg (lab.sip.codecs): "sip=G722;mobile=GSM".
CODECS_HEADER = "X-Calllab-Codecs"


def new_call_id(prefix: str = "") -> str:
    """A lab call's id, e.g. 20261129-081500-3fa2c1: sorts by time, unique enough for one lab;
    `prefix` says who started the call (the client's calls have none)."""
    return prefix + time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def call_dir(cfg: LabConfig, call_id: str) -> Path:
    """Where every party files what it recorded of one call."""
    if not CALL_ID_RE.fullmatch(call_id):
        raise ValueError(f"call id {call_id!r}: letters, digits, '-' and '_' only")
    return cfg.captures_dir / call_id
