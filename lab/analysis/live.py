"""A call's model while its capture is still being written (the notebook's live ladder).

Each update() reads only the records completed since the last one (pcap.GrowingCapture: a
record written in part waits for the next update) and appends their SIP messages, and the
browser leg's ICE checks and DTLS datagrams, to what it holds; it returns an immutable
snapshot, so what is drawn from one never changes under it. The messages are those a
whole-file read finds, numbered and marked the same (model.SipLog does both): SIP over TCP
and SCTP is reassembled again from the segments held so far (signalling only: few), and
only messages not logged before are appended. RTP statistics are the whole-file analysis's
(after the call): a live snapshot holds no streams.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lab.analysis import pcap
from lab.analysis.model import (
    CallModel,
    Found,
    Fragments,
    SipLog,
    WebrtcPacket,
    _correlate,
    _datagram_sip,
    _dialogs,
    _Parties,
    _stream_sip,
    _webrtc_packets,
)


class LiveCall:
    def __init__(self, path: str | Path, names: dict[str, str]) -> None:
        self.path = Path(path)
        self._capture = pcap.GrowingCapture(path)
        self._names = names
        self._parties = _Parties(names)
        self._log = SipLog(self._parties)
        self._start: float | None = None  # the first packet's time: the capture's clock runs forward
        self._tcp: list[pcap.TcpSegment] = []
        self._sctp: list[pcap.SctpPacket] = []
        self._streamed: set[tuple[float, int, str, str, str, str]] = set()
        self._tcp_retransmissions = 0
        self._webrtc: list[WebrtcPacket] = []
        self._fragments: Fragments = {}

    def update(self) -> CallModel:
        """Read what was appended since the last update; the model so far. CaptureError when
        the file is not a capture."""
        first = self._capture.frames_read
        packets = self._capture.read()
        if len(packets.frames.ts) == 0:
            return self.model()
        if self._start is None:
            self._start = float(packets.frames.ts.min())
        found = _datagram_sip(packets, first)
        if packets.tcp or packets.sctp:
            self._tcp += [dataclasses.replace(s, frame=first + s.frame) for s in packets.tcp]
            self._sctp += [dataclasses.replace(p, frame=first + p.frame) for p in packets.sctp]
            streamed, self._tcp_retransmissions = _stream_sip(self._tcp, self._sctp)
            found += [row for row in streamed if self._new(row)]
        found.sort(key=lambda row: (row[0], row[1]))
        self._log.add(found, self._start)
        self._webrtc += _webrtc_packets(packets, self._start, self._parties, first, self._fragments)
        return self.model()

    def _new(self, row: Found) -> bool:
        """A message of a TCP or SCTP stream not logged before (each update finds them all)."""
        ts, frame, src, dst, transport, parsed = row
        key = (ts, frame, src, dst, transport, parsed.raw)
        if key in self._streamed:
            return False
        self._streamed.add(key)
        return True

    def model(self) -> CallModel:
        """The model so far (an immutable snapshot)."""
        messages = self._log.messages
        dialogs = _dialogs(messages)
        return CallModel(
            source=str(self.path),
            start=self._start or 0.0,
            parties=self._parties.ordered(self._names.values()),
            messages=tuple(messages),
            dialogs=dialogs,
            calls=_correlate(dialogs, messages),
            streams=(),
            tcp_retransmissions=self._tcp_retransmissions,
            truncated=False,
            webrtc=tuple(self._webrtc),
        )
