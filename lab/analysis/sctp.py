"""User messages carried in SCTP DATA chunks (RFC 9260 section 3.3.1), for SIP over SCTP
(RFC 4168): each message whole, fragments joined as Wireshark's SCTP reassembly (on by default)
joins them, at the frame of its last fragment.

A message is one unfragmented DATA chunk (flags B and E), or a run of chunks of one stream with
consecutive TSNs from a B chunk to an E chunk. A chunk retransmitted (a TSN already seen in
its direction) is left out, as Wireshark's TSN analysis leaves it undissected.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from lab.analysis.pcap import SctpPacket

_DATA = 0
_BEGIN, _END = 0x02, 0x01


@dataclass(frozen=True)
class UserMessage:
    ts: float
    frame: int
    src: str
    sport: int
    dst: str
    dport: int
    stream: int
    ppid: int
    data: bytes


def _data_chunks(packet: SctpPacket) -> Iterable[tuple[int, int, int, int, bytes]]:
    """(flags, TSN, stream, PPID, user data) of each DATA chunk of a packet."""
    data, at = packet.data, 12
    while at + 4 <= len(data):
        kind, flags, length = struct.unpack_from("!BBH", data, at)
        if length < 4 or at + length > len(data):
            return
        if kind == _DATA and length >= 16:
            tsn, stream, _ssn, ppid = struct.unpack_from("!IHHI", data, at + 4)
            yield flags, tsn, stream, ppid, data[at + 16 : at + length]
        at += (length + 3) & ~3


def user_messages(packets: Iterable[SctpPacket]) -> list[UserMessage]:
    messages: list[UserMessage] = []
    partial: dict[tuple[str, int, str, int, int], tuple[int, list[bytes]]] = {}  # last TSN, pieces
    seen: dict[tuple[str, int, str, int], set[int]] = {}
    for packet in packets:
        sport, dport = struct.unpack_from("!HH", packet.data)
        tsns = seen.setdefault((packet.src, sport, packet.dst, dport), set())
        for flags, tsn, stream, ppid, data in _data_chunks(packet):
            if tsn in tsns:
                continue
            tsns.add(tsn)
            key = (packet.src, sport, packet.dst, dport, stream)
            if flags & _BEGIN:
                partial[key] = (tsn, [data])
            elif key in partial and partial[key][0] + 1 == tsn:
                partial[key] = (tsn, partial[key][1] + [data])
            else:
                partial.pop(key, None)  # a fragment whose predecessor the capture lacks
                continue
            if flags & _END:
                pieces = partial.pop(key)[1]
                messages.append(
                    UserMessage(
                        packet.ts,
                        packet.frame,
                        packet.src,
                        sport,
                        packet.dst,
                        dport,
                        stream,
                        ppid,
                        b"".join(pieces),
                    )
                )
    return messages
