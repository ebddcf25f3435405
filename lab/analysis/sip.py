"""SIP messages in a capture's TCP and WebSocket byte streams."""

from __future__ import annotations

from dataclasses import dataclass

from lab.analysis.pcap import TcpSegment
from lab.sip.message import looks_like_sip, split_stream


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
            pieces, transport = split_stream(buf), "TCP"
        for offset, data in pieces:
            if looks_like_sip(data):
                ts, frame = _when(starts, offset + len(data) - 1)
                messages.append(StreamMessage(ts, frame, src, sport, dst, dport, data, transport))
    return messages, retransmitted
