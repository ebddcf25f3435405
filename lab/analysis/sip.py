"""SIP messages in a capture's TCP and WebSocket byte streams (UDP datagrams hold one each)."""

from __future__ import annotations

from dataclasses import dataclass

from lab.analysis import tcp, websocket
from lab.analysis.pcap import TcpSegment
from lab.sip.message import looks_like_sip, split_stream

_PEEK = 4096  # enough of a segment to see a SIP start line


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


def _first_message(run: tcp.ByteRun) -> int | None:
    """The first segment of a run that starts a SIP message (CRLF keep-alives before it
    allowed): a run that begins mid-message, after a gap or with the capture, is read from
    there, as Wireshark dissects each segment that follows a lost one."""
    for offset in run.offsets:
        peek = run.data[offset : offset + _PEEK]
        if looks_like_sip(peek.lstrip(b"\r\n")):
            return offset
    return None


def stream_messages(segments: list[TcpSegment]) -> tuple[list[StreamMessage], int]:
    """SIP messages carried over TCP (plain or WebSocket), and the count of retransmitted
    segments that were left out."""
    runs, retransmitted = tcp.reassemble(segments)
    websocket_flows: set[tuple[str, int, str, int]] = set()
    messages: list[StreamMessage] = []
    for run in runs:  # a direction's runs come in sequence order: its handshake first
        flow = (run.src, run.sport, run.dst, run.dport)
        opened = websocket.frames_start(run.data)
        if opened is not None:
            websocket_flows.add(flow)
        if flow in websocket_flows:
            pieces, transport = websocket.payloads(run.data, opened or 0), "WS"
        else:
            first = _first_message(run)
            if first is None:
                continue
            pieces = [(first + at, data) for at, data in split_stream(run.data[first:])]
            transport = "TCP"
        for offset, data in pieces:
            if looks_like_sip(data):
                ts, frame = run.when(offset + len(data) - 1)
                messages.append(StreamMessage(ts, frame, *flow, data, transport))
    return messages, retransmitted
