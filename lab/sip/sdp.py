"""SDP (RFC 4566): the media lines of an offer or answer, with their codecs, address and
direction. The client reads its WebRTC leg's codec from here, the analysis its RTP endpoints."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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
