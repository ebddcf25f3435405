"""SIP over SCTP (RFC 4168), found where tshark finds it and read into the same messages,
dialogs, ladder and streams as the same call over UDP. The capture is made here: SIP in DATA
chunks on port 5060, one bundled behind a SACK, one fragmented over two packets, one
retransmitted (left out, as Wireshark leaves it)."""

from __future__ import annotations

import struct
from pathlib import Path

from lab.analysis.model import load
from lab.analysis.synth import Datagram, SynthCall, SynthStream, frame, write_pcap
from lab.analysis.wireshark import fields
from lab.plots import ladder

from .conftest import A, B
from .test_encapsulation import ethernet, ipv4


def data_chunk(tsn: int, data: bytes, flags: int = 0x03) -> bytes:
    """A DATA chunk (stream 0, PPID 0), padded to 4 bytes; flags B (0x02) and E (0x01)."""
    chunk = struct.pack("!BBHIHHI", 0, flags, 16 + len(data), tsn, 0, 0, 0) + data
    return chunk + bytes(-len(chunk) % 4)


SACK = struct.pack("!BBHIIHH", 3, 0, 16, 99, 65536, 0, 0)


def sctp_frame(d: Datagram, *chunks: bytes) -> bytes:
    header = struct.pack("!HHII", d.sport, d.dport, 0x1234, 0)
    return ethernet(ipv4(132, header + b"".join(chunks), d.src, d.dst))


def write_frames(path: Path, frames: list[tuple[float, bytes]]) -> Path:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, data in frames:
        out.append(struct.pack("<IIII", int(ts), round(ts % 1 * 1e6), len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def test_sip_over_sctp_reads_as_over_udp_and_as_tshark_reads_it(tmp_path: Path) -> None:
    call = SynthCall(streams=[SynthStream(A, 4000, B, 5000, 0x1111, packets=50)])
    rows = list(call.datagrams())
    udp = write_pcap(tmp_path / "udp.pcap", rows)
    frames: list[tuple[float, bytes]] = []
    tsn = 1
    for d in rows:
        if d.sport != 5060:
            frames.append((d.ts, frame(d)))
            continue
        if d.payload.startswith(b"INVITE"):
            frames.append((d.ts, sctp_frame(d, SACK, data_chunk(tsn, d.payload))))
        elif d.payload.startswith(b"SIP/2.0 200") and b"INVITE" in d.payload:
            third = len(d.payload) // 3
            parts = d.payload[:third], d.payload[third : 2 * third], d.payload[2 * third :]
            frames.append(
                (d.ts, sctp_frame(d, data_chunk(tsn, parts[0], 0x02), data_chunk(tsn + 1, parts[1], 0)))
            )
            frames.append((d.ts + 0.001, sctp_frame(d, data_chunk(tsn + 2, parts[2], 0x01))))
            tsn += 2
        else:
            frames.append((d.ts, sctp_frame(d, data_chunk(tsn, d.payload))))
            if d.payload.startswith(b"SIP/2.0 180"):
                frames.append((d.ts + 0.5, frames[-1][1]))  # retransmitted: same TSN
        tsn += 1
    path = write_frames(tmp_path / "sctp.pcap", sorted(frames, key=lambda f: f[0]))

    theirs = fields(path, "sip", "frame.number", "sip.Method", "sip.Status-Code", "sctp.srcport")
    model = load(path, names={})
    ours = [
        (str(m.frame), m.method if m.is_request else "", str(m.status or ""), "5060") for m in model.messages
    ]
    assert ours == theirs and len(ours) == 6
    assert {m.transport for m in model.messages} == {"SCTP"}

    over_udp = load(udp, names={})
    seen = [(m.label, m.src, m.dst, m.call_id) for m in model.messages]
    assert seen == [(m.label, m.src, m.dst, m.call_id) for m in over_udp.messages]
    assert [d.messages for d in over_udp.dialogs] == [(0, 1, 2, 3, 4, 5)]
    assert [d.parties for d in model.dialogs] == [d.parties for d in over_udp.dialogs]
    assert [(s.ssrc, s.stats.packets, s.codec) for s in model.streams] == [(0x1111, 50, "PCMU")]
    assert ladder(model) is not None
