"""SDP (RFC 4566): the media lines of an offer or answer, with their codecs, address and
direction. The client reads its WebRTC leg's codec from here, the analysis its RTP endpoints;
the SIP parties edit what they send with SdpEdit functions (keep_codecs, composed)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: (the SDP a party is about to send, the far end's SDP or "") -> the SDP to send
SdpEdit = Callable[[str, str], str]


@dataclass(frozen=True)
class Codec:
    pt: int
    name: str
    rate: int

    def __str__(self) -> str:
        return f"{self.name}/{self.rate}"


@dataclass(frozen=True)
class SdpMedia:
    media: str  # audio, video
    address: str
    port: int
    codecs: tuple[Codec, ...]
    direction: str  # sendrecv, sendonly, recvonly, inactive

    @property
    def summary(self) -> str:
        if not self.port:
            return f"{self.media} declined (port 0)"
        names = ",".join(c.name for c in self.codecs if c.name != "telephone-event") or "-"
        return f"{self.media} {names} {self.direction}"


# Static payload types (RFC 3551) that SDP may use without an rtpmap.
STATIC_PT = {
    0: Codec(0, "PCMU", 8000),
    3: Codec(3, "GSM", 8000),
    4: Codec(4, "G723", 8000),
    8: Codec(8, "PCMA", 8000),
    9: Codec(9, "G722", 8000),
    13: Codec(13, "CN", 8000),
    18: Codec(18, "G729", 8000),
}


@dataclass
class _MediaDraft:
    media: str
    port: int
    pts: list[int]
    address: str = ""
    direction: str = ""
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)


_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# ASCII digits, few of them: str.isdigit() takes "²", which int() refuses, and a clock rate
# must fit the analysis' int64 arrays.
_NUMBER = re.compile(r"[0-9]{1,5}")
_RTPMAP = re.compile(r"rtpmap:([0-9]{1,3})\s+([^/\s]+)/([0-9]{1,9})")


def parse_sdp(body: str) -> tuple[SdpMedia, ...]:
    session_address = ""
    session_direction = "sendrecv"
    drafts: list[_MediaDraft] = []
    for line in body.splitlines():
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:].strip()
        current = drafts[-1] if drafts else None
        if kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                address = parts[2].split("/")[0]
                if current is None:
                    session_address = address
                else:
                    current.address = address
        elif kind == "m":
            parts = value.split()
            port = parts[1].split("/")[0] if len(parts) >= 3 else ""
            if _NUMBER.fullmatch(port) and int(port) <= 65535:
                pts = [int(p) for p in parts[3:] if _NUMBER.fullmatch(p)]
                drafts.append(_MediaDraft(parts[0], int(port), pts))
        elif kind == "a" and value in _DIRECTIONS:
            if current is None:
                session_direction = value
            else:
                current.direction = value
        elif kind == "a" and current is not None:
            match = _RTPMAP.match(value)
            if match:
                current.rtpmap[int(match.group(1))] = (match.group(2), int(match.group(3)))
    return tuple(
        SdpMedia(
            media=d.media,
            address=d.address or session_address,
            port=d.port,
            codecs=tuple(
                Codec(pt, *d.rtpmap[pt]) if pt in d.rtpmap else STATIC_PT.get(pt, Codec(pt, f"PT{pt}", 0))
                for pt in d.pts
            ),
            direction=d.direction or session_direction,
        )
        for d in drafts
    )


def compose(*edits: SdpEdit | None) -> SdpEdit | None:
    """One edit doing each of `edits` in turn (None ones left out); None when none is left."""
    chain = [e for e in edits if e is not None]
    if len(chain) <= 1:
        return chain[0] if chain else None

    def edit(local: str, remote: str) -> str:
        for each in chain:
            local = each(local, remote)
        return local

    return edit


def keep_codecs(sdp: str, codecs: Iterable[str]) -> str:
    """The SDP with its audio streams offering only `codecs` ("speex/16000", as in rtpmap,
    any case), plus telephone-event at a kept codec's clock rate (all of them when none
    matches), so DTMF keeps working. The rtpmap and fmtp lines of the payload types left
    out go too; every other line stays as it was. ValueError when an audio stream has none
    of `codecs`."""
    wanted = {c.lower() for c in codecs}
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    out = lines[: starts[0]] if starts else lines
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        out += _keep_in_media(lines[start:end], wanted)
    return newline.join(out)


_PT_ATTRIBUTE = re.compile(r"a=(?:rtpmap|fmtp|rtcp-fb):([0-9]{1,3})[\s]")


def _keep_in_media(section: list[str], wanted: set[str]) -> list[str]:
    parts = section[0].split()
    if parts[0] != "m=audio" or len(parts) < 4:
        return section
    names: dict[str, tuple[str, int]] = {}
    for line in section:
        match = _RTPMAP.match(line[2:]) if line.startswith("a=") else None
        if match:
            names[match.group(1)] = (match.group(2).lower(), int(match.group(3)))
    for pt in parts[3:]:
        static = STATIC_PT.get(int(pt)) if _NUMBER.fullmatch(pt) else None
        if pt not in names and static is not None:
            names[pt] = (static.name.lower(), static.rate)
    kept = [pt for pt in parts[3:] if pt in names and "/".join(map(str, names[pt])) in wanted]
    if not kept:
        offered = ", ".join("/".join(map(str, names[pt])) for pt in parts[3:] if pt in names)
        raise ValueError(f"the SDP offers none of {', '.join(sorted(wanted))} (it has {offered})")
    rates = {names[pt][1] for pt in kept}
    events = [pt for pt in parts[3:] if names.get(pt, ("",))[0] == "telephone-event"]
    kept += [pt for pt in events if names[pt][1] in rates] or events
    kept.sort(key=parts.index)
    dropped = set(parts[3:]) - set(kept)
    body = [
        line for line in section[1:] if (m := _PT_ATTRIBUTE.match(line)) is None or m.group(1) not in dropped
    ]
    return [" ".join([*parts[:3], *kept]), *body]


_CANDIDATE = re.compile(r"a=candidate:\S+ 1 (\S+) [0-9]+ (\S+) ([0-9]+) typ (\S+)")
_FINGERPRINT = re.compile(r"a=fingerprint:(\S+) ([0-9A-Fa-f:]+)")
_SETUP = re.compile(r"a=setup:(\S+)")
_ICE_PWD = re.compile(r"^(a=ice-pwd:)[^\r\n]*", re.MULTILINE)
SHOWN_CANDIDATES = 2


def webrtc_summary(body: str) -> str:
    """What a WebRTC offer or answer sets up, in one line for a ladder note: each m-line's
    codecs and direction (port 0: declined), the ICE candidates of the RTP component, and
    the DTLS role (a=setup) and certificate fingerprint (the first, shortened)."""
    media = "; ".join(m.summary for m in parse_sdp(body))
    candidates = list(  # bundled m-lines repeat the same ones
        dict.fromkeys(
            f"{kind} {transport.lower()} {address}:{port}"
            for transport, address, port, kind in _CANDIDATE.findall(body)
        )
    )
    ice = ", ".join(candidates[:SHOWN_CANDIDATES]) or "none"
    if len(candidates) > SHOWN_CANDIDATES:
        ice += f" +{len(candidates) - SHOWN_CANDIDATES} more"
    fingerprint = _FINGERPRINT.search(body)
    setup = _SETUP.search(body)
    dtls = f"DTLS setup {setup.group(1) if setup else '?'}"
    if fingerprint:
        digest = fingerprint.group(2)
        dtls += f", {fingerprint.group(1)} {digest[:11]}...{digest[-5:]}"
    return f"{media}; ICE {ice}; {dtls}"


def without_ice_password(body: str) -> str:
    """The SDP with its ICE password (a=ice-pwd, the key of every STUN check) redacted."""
    return _ICE_PWD.sub(r"\1[redacted]", body)
