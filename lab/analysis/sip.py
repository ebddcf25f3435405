"""SIP messages and their SDP, from UDP datagrams and from TCP/WebSocket byte streams."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lab.analysis.pcap import TcpSegment

METHODS = (
    b"INVITE",
    b"ACK",
    b"BYE",
    b"CANCEL",
    b"OPTIONS",
    b"REGISTER",
    b"PRACK",
    b"SUBSCRIBE",
    b"NOTIFY",
    b"PUBLISH",
    b"INFO",
    b"REFER",
    b"MESSAGE",
    b"UPDATE",
)
_COMPACT = {
    "i": "call-id",
    "f": "from",
    "t": "to",
    "v": "via",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "r": "refer-to",
    "b": "referred-by",
}
_SECRET_HEADERS = re.compile(r"^((?:proxy-)?authorization\s*:\s*)([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def looks_like_sip(payload: bytes) -> bool:
    if payload.startswith(b"SIP/2.0 "):
        return True
    space = payload.find(b" ", 0, 12)
    return space > 0 and payload[:space] in METHODS and b" SIP/2.0" in payload[: payload.find(b"\r\n")]


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
            if len(parts) >= 3 and parts[1].split("/")[0].isdigit():
                pts = [int(p) for p in parts[3:] if p.isdigit()]
                drafts.append(_MediaDraft(parts[0], int(parts[1].split("/")[0]), pts))
        elif kind == "a" and value in _DIRECTIONS:
            if current is None:
                session_direction = value
            else:
                current.direction = value
        elif kind == "a" and current is not None:
            match = re.match(r"rtpmap:(\d+)\s+([^/\s]+)/(\d+)", value)
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


@dataclass(frozen=True)
class ParsedSip:
    start_line: str
    headers: dict[str, str]  # lower-case full names, first occurrence
    body: str
    raw: str

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        return self.headers.get("cseq", " ").split()[-1] if self.headers.get("cseq") else ""

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        parts = self.start_line.split(" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None

    @property
    def reason(self) -> str:
        parts = self.start_line.split(" ", 2)
        return parts[2] if not self.is_request and len(parts) > 2 else ""

    @property
    def request_uri(self) -> str:
        parts = self.start_line.split(" ")
        return parts[1] if self.is_request and len(parts) > 1 else ""

    def tag(self, header: str) -> str:
        match = re.search(r";\s*tag=([^;>\s]+)", self.headers.get(header, ""))
        return match.group(1) if match else ""

    @property
    def branch(self) -> str:
        match = re.search(r";\s*branch=([^;,\s]+)", self.headers.get("via", ""))
        return match.group(1) if match else ""

    @property
    def sdp(self) -> tuple[SdpMedia, ...]:
        if "application/sdp" not in self.headers.get("content-type", "").lower():
            return ()
        return parse_sdp(self.body)


def redact(text: str) -> str:
    """Digest credentials out of a raw message: what reports and logs may show."""
    return _SECRET_HEADERS.sub(lambda m: m.group(1) + "[redacted]", text)


def parse_sip(data: bytes) -> ParsedSip | None:
    """One SIP message (the whole of `data`); None when it is not SIP."""
    if not looks_like_sip(data):
        return None
    text = data.decode("utf-8", errors="replace")
    head, _, body = text.partition("\r\n\r\n")
    if not _:
        head, _, body = text.partition("\n\n")
    lines = head.replace("\r\n", "\n").split("\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip().lower()
        key = _COMPACT.get(key, key)
        headers.setdefault(key, value.strip())
    return ParsedSip(start_line=lines[0].strip(), headers=headers, body=body, raw=redact(text))


# --- streams: SIP over TCP and over WebSocket -------------------------------------------


@dataclass(frozen=True)
class StreamMessage:
    ts: float
    frame: int
    src: str
    sport: int
    dst: str
    dport: int
    data: bytes
    transport: str  # TCP or WS


def _reassemble(segments: list[TcpSegment]) -> tuple[bytes, list[tuple[int, float, int]], int]:
    """One direction of a TCP flow: its bytes in order, where each segment starts, and how
    many segments were retransmissions (bytes already seen)."""
    segments = sorted(segments, key=lambda s: (s.seq, s.frame))
    base = segments[0].seq
    buf = bytearray()
    starts: list[tuple[int, float, int]] = []  # (byte offset, ts, frame)
    retransmitted = 0
    for seg in segments:
        rel = (seg.seq - base) % (1 << 32)
        if rel + len(seg.payload) <= len(buf):
            retransmitted += 1
            continue
        if rel > len(buf):  # a gap: bytes never captured; keep what follows apart
            buf += b"\x00" * (rel - len(buf))
        buf += seg.payload[len(buf) - rel :]
        starts.append((rel, seg.ts, seg.frame))
    return bytes(buf), starts, retransmitted


def _when(starts: list[tuple[int, float, int]], offset: int) -> tuple[float, int]:
    """Time and frame of the segment that carried the byte at `offset` (for a message: its
    last byte, where Wireshark shows the reassembled message)."""
    best = starts[0]
    for start in starts:
        if start[0] > offset:
            break
        best = start
    return best[1], best[2]


def _split_sip(buf: bytes) -> list[tuple[int, bytes]]:
    """SIP messages in a byte stream, framed by Content-Length."""
    out = []
    pos = 0
    while pos < len(buf):
        while buf[pos : pos + 2] == b"\r\n":  # keep-alive CRLFs
            pos += 2
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = buf[pos:end]
        match = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
        length = int(match.group(1)) if match else 0
        stop = end + 4 + length
        if stop > len(buf):
            break
        out.append((pos, buf[pos:stop]))
        pos = stop
    return out


def _websocket_payloads(buf: bytes, after: int) -> list[tuple[int, bytes]]:
    """Text/binary frame payloads of a WebSocket stream starting at byte `after` (RFC 6455)."""
    out = []
    pos = after
    while pos + 2 <= len(buf):
        b0, b1 = buf[pos], buf[pos + 1]
        opcode, masked, length = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        at = pos + 2
        if length == 126:
            length = int.from_bytes(buf[at : at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(buf[at : at + 8], "big")
            at += 8
        mask = buf[at : at + 4] if masked else b""
        at += 4 if masked else 0
        if at + length > len(buf):
            break
        payload = buf[at : at + length]
        if masked:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        if opcode in (1, 2):
            out.append((at, payload))
        pos = at + length
    return out


def stream_messages(segments: list[TcpSegment]) -> tuple[list[StreamMessage], int]:
    """SIP messages carried over TCP (plain or WebSocket), and the count of retransmitted
    segments that were left out."""
    flows: dict[tuple[str, int, str, int], list[TcpSegment]] = {}
    for seg in segments:
        flows.setdefault((seg.src, seg.sport, seg.dst, seg.dport), []).append(seg)
    messages: list[StreamMessage] = []
    retransmitted = 0
    for (src, sport, dst, dport), segs in flows.items():
        buf, starts, again = _reassemble(segs)
        retransmitted += again
        if buf.startswith(b"GET ") or buf.startswith(b"HTTP/1.1 101"):
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0 or b"websocket" not in buf[:head_end].lower():
                continue
            pieces, transport = _websocket_payloads(buf, head_end + 4), "WS"
        else:
            pieces, transport = _split_sip(buf), "TCP"
        for offset, data in pieces:
            if looks_like_sip(data):
                ts, frame = _when(starts, offset + len(data) - 1)
                messages.append(StreamMessage(ts, frame, src, sport, dst, dport, data, transport))
    return messages, retransmitted
