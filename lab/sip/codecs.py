"""Which codec each SIP leg of a call carries: the names the lab uses, what each leg may
carry, the header a call's choice travels in, and the offerer's SDP edit that enforces it.

Legs: `sip` (gateway <-> PSTN gateway) may carry every audio codec of the pjsua2 wheel;
`mobile` (PSTN gateway <-> phone) the ones a mobile network's media gateway would hand to
a phone, G.722 and Speex 16 standing in for HD voice (AMR-WB, which the wheel lacks). The
wheel has no Opus and no G.729 (pjproject builds them only against libopus and a licensed
G.729 library), so neither can be on a SIP leg.

pjsua2's codec priorities are per process, and the PSTN gateway offers on both of its
legs: so each call's offerer restricts its own offer (keep_codecs) to the leg's codec, or
to the leg's default list when the call asks for none, which is what the lab offered
before codecs could be chosen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from lab.sip.sdp import SdpEdit, keep_codecs

if TYPE_CHECKING:
    from lab.analysis.model import RtpStream
    from lab.config import LabConfig

#: The lab's name of each codec -> its rtpmap encoding name and RTP clock rate. G.722's RTP
#: clock is 8000 although it samples at 16 kHz (RFC 3551).
RTPMAP = {
    "PCMU": "PCMU/8000",
    "PCMA": "PCMA/8000",
    "G722": "G722/8000",
    "SPEEX8": "speex/8000",
    "SPEEX16": "speex/16000",
    "SPEEX32": "speex/32000",
    "ILBC": "iLBC/8000",
    "GSM": "GSM/8000",
}
#: What each SIP leg may carry, in the order the help lists them.
LEG_CODECS = {
    "sip": ("PCMU", "PCMA", "G722", "SPEEX8", "SPEEX16", "SPEEX32", "ILBC", "GSM"),
    "mobile": ("GSM", "ILBC", "SPEEX8", "PCMU", "PCMA", "G722", "SPEEX16"),
}
#: Codecs people ask for that the pjsua2 wheel does not have, and why.
NOT_IN_THE_WHEEL = {
    "OPUS": "the pjsua2 wheel is built without libopus",
    "G729": "the pjsua2 wheel has no G.729 (pjproject needs a separately licensed library)",
}
OPTIONS = {"sip": "--sip-codec", "mobile": "--mobile-codec"}


class CodecError(ValueError):
    """A codec the lab cannot put on that leg; the message names the option and the choices."""


def choose(leg: str, name: str, option: str | None = None) -> str:
    """The lab's name of codec `name` (any case: g722, Speex16) for `leg`, or CodecError."""
    what = option or f"{leg} codec"
    key = name.strip().upper().replace(".", "").replace("-", "").replace("_", "")
    allowed = LEG_CODECS[leg]
    if key in allowed:
        return key
    choices = ", ".join(c.lower() for c in allowed)
    if key in NOT_IN_THE_WHEEL:
        raise CodecError(f"{what} {name}: not on SIP legs, {NOT_IN_THE_WHEEL[key]}; use one of {choices}")
    where = " on the mobile leg" if key in RTPMAP else ""
    raise CodecError(f"{what} {name}: not possible{where}; use one of {choices}")


def to_header(choice: Mapping[str, str]) -> str:
    """{"sip": "G722", "mobile": "GSM"} -> "sip=G722;mobile=GSM" (X-Calllab-Codecs)."""
    return ";".join(f"{leg}={codec}" for leg, codec in choice.items())


def from_header(text: str) -> dict[str, str]:
    """The legs' codecs a call asks for; CodecError for a leg or codec the lab cannot do."""
    choice: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        leg, _, name = item.partition("=")
        leg = leg.strip().lower()
        if leg not in LEG_CODECS:
            raise CodecError(f"codec leg {leg!r}: use {' or '.join(LEG_CODECS)}")
        choice[leg] = choose(leg, name)
    return choice


def default_offer(cfg: LabConfig, leg: str) -> tuple[str, ...]:
    """What the leg's offerer offers when the call chooses no codec: G.711 on the SIP leg,
    the config's mobile codec first on the mobile leg (as before codecs could be chosen);
    a wideband lab puts G.722 before them, so its calls are wideband unless asked otherwise."""
    offer = ("PCMU", "PCMA") if leg == "sip" else (cfg.mobile_codec.upper(), "PCMU", "PCMA")
    return ("G722", *offer) if cfg.wideband else offer


def enabled(first: Iterable[str], leg_codecs: Iterable[str]) -> list[str]:
    """An endpoint's codec list: `first` in their order, then the rest of `leg_codecs`, so
    a party can carry any codec of its legs while what it offers unedited stays as it was."""
    codecs = [c.upper() for c in first]
    return codecs + [c for c in leg_codecs if c not in codecs]


def offer(codecs: Iterable[str]) -> SdpEdit:
    """The offerer's edit: its audio offers only `codecs` (plus telephone-event)."""
    wanted = [RTPMAP[c] for c in codecs]
    return lambda local, remote: keep_codecs(local, wanted)


def lab_name(encoding: str, rate: int) -> str | None:
    """speex, 16000 -> SPEEX16; None for a codec no SIP leg carries (opus, telephone-event)."""
    key = f"{encoding}/{rate}".lower()
    return next((name for name, rtpmap in RTPMAP.items() if rtpmap.lower() == key), None)


def negotiated(streams: Sequence[RtpStream], cfg: LabConfig) -> dict[str, str | None]:
    """Each leg's codec as a call's streams in its capture show it (the first stream toward
    the phone; lab.analysis.recorded_call.own_streams picks the call's own)."""
    legs = {
        "browser": (cfg.browser.name, cfg.gateway.name),
        "sip": (cfg.gateway.name, cfg.pstn.name),
        "mobile": (cfg.pstn.name, cfg.phone.name),
    }
    found: dict[str, str | None] = {}
    for leg, (near, far) in legs.items():
        network = cfg.networks[leg].name
        stream = next(
            (s for s in streams if (s.src_party, s.dst_party) in ((near, far), (near, network))),
            None,
        )
        found[leg] = None if stream is None else lab_name(stream.codec, stream.clock_rate) or stream.codec
    return found
