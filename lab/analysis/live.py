"""A call's model while its capture is still being written (the notebook's live ladder).

Each update() reads only the records completed since the last one (pcap.GrowingCapture: a
record written in part waits for the next update) and appends their SIP messages, and the
browser leg's ICE checks and DTLS datagrams, to what it holds; it returns an immutable
snapshot, so what is drawn from one never changes under it. The messages are those a
whole-file read finds, numbered and marked the same (model.SipLog does both): SIP over TCP
and SCTP is reassembled again from the segments held so far (signalling only: few), and
only messages not logged before are appended. Of the other datagrams it keeps only their
addresses and RTP headers, decoded once, not their bytes: each snapshot's RTP streams (the
ladder's bands) are computed from those, as a whole-file read computes them. RTCP is left
to the whole-file analysis after the call.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

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
    _media,
    _Parties,
    _stream_sip,
    _webrtc_packets,
)
from lab.analysis.rtp import RtpHeaders, decode_headers


class LiveCall:
    """The model of the call a growing capture holds so far (see the module's docstring)."""

    def __init__(self, path: str | Path, names: dict[str, str]) -> None:
        self.path = Path(path)
        self._capture = pcap.GrowingCapture(path)
        self._names = names
        self._parties = _Parties(names)
        self._log = SipLog(self._parties)
        # A whole-file read counts time from its earliest packet: this one from its first (a
        # growing capture's clock runs forward).
        self._start: float | None = None
        self._tcp: list[pcap.TcpSegment] = []
        self._sctp: list[pcap.SctpPacket] = []
        self._streamed: set[tuple[float, int, str, str, str, str]] = set()
        self._tcp_retransmissions = 0
        self._webrtc: list[WebrtcPacket] = []
        self._fragments: Fragments = {}
        self._addresses: dict[str, int] = {}  # one address table for every piece
        self._udp: list[pcap.Udp] = []  # each piece's datagrams, frames and addresses made file-wide
        self._headers: list[RtpHeaders] = []
        self._model: CallModel | None = None  # the last update's

    def update(self) -> CallModel:
        """Read what was appended since the last update; the model so far. CaptureError when
        the file is not a capture."""
        first = self._capture.frames_read
        packets = self._capture.read()
        if len(packets.frames.ts) == 0:
            if self._model is None:
                self._model = self.model()
            return self._model  # nothing new: the same snapshot
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
        udp = packets.udp
        self._headers.append(decode_headers(packets.frames.data, udp.payload, udp.length))
        table = np.array([self._addresses.setdefault(a, len(self._addresses)) for a in udp.addresses], int)
        self._udp.append(
            dataclasses.replace(
                udp,
                frame=first + udp.frame,
                src=table[udp.src],
                dst=table[udp.dst],
                payload=np.full(len(udp.frame), -1),  # the bytes are not kept
                addresses=(),
            )
        )
        self._model = self.model()
        return self._model

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
        start = self._start or 0.0
        streams, hops = _media(self._datagrams(), self._rtp_headers(), messages, self._parties, {}, start)
        return CallModel(
            source=str(self.path),
            start=start,
            parties=self._parties.ordered(self._names.values()),
            messages=tuple(messages),
            dialogs=dialogs,
            calls=_correlate(dialogs, messages),
            streams=streams,
            tcp_retransmissions=self._tcp_retransmissions,
            truncated=False,
            hops=hops,
            webrtc=tuple(self._webrtc),
        )

    def _datagrams(self) -> pcap.Udp:
        columns = ("frame", "ts", "src", "sport", "dst", "dport", "payload", "length")
        joined = {
            c: np.concatenate([getattr(u, c) for u in self._udp] or [np.zeros(0, int)]) for c in columns
        }
        return pcap.Udp(**joined, addresses=tuple(self._addresses))

    def _rtp_headers(self) -> RtpHeaders:
        fields = [f.name for f in dataclasses.fields(RtpHeaders)]
        return RtpHeaders(
            **{
                f: np.concatenate([getattr(h, f) for h in self._headers] or [np.zeros(0, int)])
                for f in fields
            }
        )
