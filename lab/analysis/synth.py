"""Synthetic calls written as pcap files: SIP with SDP plus RTP streams with loss, jitter,
reordering, sequence wrap, comfort noise and DTMF placed exactly where you ask.

Deterministic (seeded), so tests can compare the lab's statistics with tshark's on traffic
whose truth is known, and benchmarks can make a 10-minute call in a second.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_ETH = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"


@dataclass(frozen=True)
class Datagram:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


@dataclass(frozen=True)
class SynthStream:
    src: str
    sport: int
    dst: str
    dport: int
    ssrc: int
    pt: int = 0
    codec: str = "PCMU"
    clock: int = 8000
    packets: int = 500
    ptime_ms: int = 20
    first_seq: int = 1000
    first_ts: int = 160000
    start: float = 0.0  # s after the call starts
    lost: frozenset[int] = frozenset()  # packet numbers never sent
    jitter_ms: float = 0.0  # std-dev of arrival noise
    swap: frozenset[int] = frozenset()  # packet n arrives after n+1
    comfort_noise: frozenset[int] = frozenset()  # packet numbers sent as CN (PT 13)
    dtmf: frozenset[int] = frozenset()  # packet numbers sent as telephone-event (PT 101)
    seed: int = 1
    payload_bytes: int = 160

    def datagrams(self, t0: float) -> list[Datagram]:
        rng = np.random.default_rng(self.seed)
        step = self.ptime_ms / 1000.0
        samples = self.clock * self.ptime_ms // 1000
        noise = (
            rng.normal(0.0, self.jitter_ms / 1000.0, self.packets)
            if self.jitter_ms
            else np.zeros(self.packets)
        )
        out = []
        for n in range(self.packets):
            if n in self.lost:
                continue
            seq = (self.first_seq + n) & 0xFFFF
            ts = (self.first_ts + n * samples) & 0xFFFFFFFF
            pt, body = self.pt, bytes(self.payload_bytes)
            if n in self.comfort_noise:
                pt, body = 13, b"\x40"
            elif n in self.dtmf:
                pt, body = 101, bytes([1, 10, 0, 160])
            marker = 0x80 if n == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | pt, seq, ts, self.ssrc)
            arrival = t0 + self.start + n * step + abs(noise[n])
            if n in self.swap:
                arrival += step * 1.5
            out.append(Datagram(arrival, self.src, self.sport, self.dst, self.dport, header + body))
        return out


def _ip(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def frame(d: Datagram) -> bytes:
    udp_len = 8 + len(d.payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, _ip(d.src), _ip(d.dst))
    udp = struct.pack("!HHHH", d.sport, d.dport, udp_len, 0)
    return _ETH + ip + udp + d.payload


def write_pcap(path: Path, datagrams: Iterable[Datagram]) -> Path:
    """A classic microsecond pcap of Ethernet/IPv4/UDP frames, in time order."""
    rows = sorted(datagrams, key=lambda d: d.ts)
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for d in rows:
            data = frame(d)
            sec = int(d.ts)
            usec = int(round((d.ts - sec) * 1e6))
            if usec == 1_000_000:
                sec, usec = sec + 1, 0
            out.write(struct.pack("<IIII", sec, usec, len(data), len(data)))
            out.write(data)
    return path


@dataclass
class SynthCall:
    """A caller, a callee and streams between them, with the SIP that sets them up."""

    caller: tuple[str, int] = ("10.0.0.1", 5060)
    callee: tuple[str, int] = ("10.0.0.2", 5060)
    streams: list[SynthStream] = field(default_factory=list)
    with_sdp: bool = True
    t0: float = 1_700_000_000.0
    call_id: str = "synth-1@calllab"
    #: datagrams after the streams, before the BYE (a re-INVITE and the media it sets up)
    then: list[Datagram] = field(default_factory=list)

    def _sip(
        self, ts: float, src: tuple[str, int], dst: tuple[str, int], lines: list[str], sdp: str = ""
    ) -> Datagram:
        body = sdp.encode()
        head = "\r\n".join(lines + [f"Call-ID: {self.call_id}", f"Content-Length: {len(body)}"])
        if sdp:
            head = head.replace("Call-ID:", "Content-Type: application/sdp\r\nCall-ID:")
        return Datagram(ts, src[0], src[1], dst[0], dst[1], head.encode() + b"\r\n\r\n" + body)

    def _sdp(self, side: str) -> str:
        lines = ["v=0", f"o=- 1 1 IN IP4 {side}", "s=-", "t=0 0"]
        for s in self.streams:
            if s.dst == side:  # SDP says where a party wants to receive
                lines += [
                    f"m=audio {s.dport} RTP/AVP {s.pt} 13 101",
                    f"c=IN IP4 {s.dst}",
                    f"a=rtpmap:{s.pt} {s.codec}/{s.clock}" + ("/2" if s.codec.lower() == "opus" else ""),
                    "a=rtpmap:13 CN/8000",
                    "a=rtpmap:101 telephone-event/8000",
                    "a=sendrecv",
                ]
        return "\r\n".join(lines) + "\r\n"

    def datagrams(self) -> Iterator[Datagram]:
        a, b, t = self.caller, self.callee, self.t0
        uri = f"sip:+79991234567@{b[0]}"
        via_a = f"Via: SIP/2.0/UDP {a[0]}:{a[1]};branch=z9hG4bK-1"
        common = [f"From: <sip:caller@{a[0]}>;tag=a1", f"To: <{uri}>"]
        to_b = [f"From: <sip:caller@{a[0]}>;tag=a1", f"To: <{uri}>;tag=b1"]
        sdp_a = self._sdp(a[0]) if self.with_sdp else ""
        sdp_b = self._sdp(b[0]) if self.with_sdp else ""
        yield self._sip(t, a, b, [f"INVITE {uri} SIP/2.0", via_a, *common, "CSeq: 1 INVITE"], sdp_a)
        yield self._sip(t + 0.01, b, a, ["SIP/2.0 180 Ringing", via_a, *to_b, "CSeq: 1 INVITE"])
        yield self._sip(t + 0.5, b, a, ["SIP/2.0 200 OK", via_a, *to_b, "CSeq: 1 INVITE"], sdp_b)
        via_ack = f"Via: SIP/2.0/UDP {a[0]}:{a[1]};branch=z9hG4bK-2"
        yield self._sip(t + 0.51, a, b, [f"ACK {uri} SIP/2.0", via_ack, *to_b, "CSeq: 1 ACK"])
        end = t + 0.6
        for s in self.streams:
            rows = s.datagrams(t + 0.6)
            yield from rows
            end = max(end, max((d.ts for d in rows), default=end))
        yield from self.then
        end = max(end, max((d.ts for d in self.then), default=end))
        via_bye = f"Via: SIP/2.0/UDP {a[0]}:{a[1]};branch=z9hG4bK-3"
        yield self._sip(end + 0.05, a, b, [f"BYE {uri} SIP/2.0", via_bye, *to_b, "CSeq: 2 BYE"])
        yield self._sip(end + 0.06, b, a, ["SIP/2.0 200 OK", via_bye, *to_b, "CSeq: 2 BYE"])

    def reinvite(self, ts: float, offer: str, answer: str) -> list[Datagram]:
        """The callee's re-INVITE with SDP `offer`, the caller's 200 OK with `answer`, the ACK."""
        a, b = self.caller, self.callee
        uri = f"sip:caller@{a[0]}"
        via = f"Via: SIP/2.0/UDP {b[0]}:{b[1]};branch=z9hG4bK-r{ts:.3f}"
        dialog = [f"From: <sip:+79991234567@{b[0]}>;tag=b1", f"To: <{uri}>;tag=a1"]
        return [
            self._sip(ts, b, a, [f"INVITE {uri} SIP/2.0", via, *dialog, "CSeq: 1 INVITE"], offer),
            self._sip(ts + 0.05, a, b, ["SIP/2.0 200 OK", via, *dialog, "CSeq: 1 INVITE"], answer),
            self._sip(ts + 0.06, b, a, [f"ACK {uri} SIP/2.0", via + "-ack", *dialog, "CSeq: 1 ACK"]),
        ]

    def write(self, path: Path) -> Path:
        return write_pcap(path, self.datagrams())


# --- RTCP (RFC 3550 SR/RR, RFC 3611 XR VoIP metrics) ------------------------------------


@dataclass(frozen=True)
class ReportBlock:
    """A reception report block as its sender fills it in."""

    source: int
    fraction_lost: int  # of 256
    cumulative_lost: int
    highest_seq: int
    jitter: int  # timestamp units
    lsr: int = 0
    dlsr: int = 0  # 1/65536 s

    def pack(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return struct.pack("!IIIIII", self.source, lost, self.highest_seq, self.jitter, self.lsr, self.dlsr)


def ntp(seconds: float) -> tuple[int, int]:
    """The NTP timestamp (seconds since 1900) of a Unix time: (MSW, LSW)."""
    whole = int(seconds) + 2_208_988_800
    return whole & 0xFFFFFFFF, int((seconds % 1) * (1 << 32))


def ntp_middle(seconds: float) -> int:
    """The middle 32 bits of the NTP timestamp of a Unix time: an LSR."""
    msw, lsw = ntp(seconds)
    return ((msw & 0xFFFF) << 16) | (lsw >> 16)


def _rtcp(pt: int, count: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body


def sender_report(ssrc: int, sent_at: float, rtp_ts: int, packets: int, *blocks: ReportBlock) -> bytes:
    msw, lsw = ntp(sent_at)
    info = struct.pack("!IIIIII", ssrc, msw, lsw, rtp_ts, packets, packets * 160)
    return _rtcp(200, len(blocks), info + b"".join(b.pack() for b in blocks))


def receiver_report(ssrc: int, *blocks: ReportBlock) -> bytes:
    return _rtcp(201, len(blocks), struct.pack("!I", ssrc) + b"".join(b.pack() for b in blocks))


def voip_metrics(ssrc: int, source: int, metrics: dict[str, int]) -> bytes:
    """An RTCP-XR packet with one VoIP metrics block (RFC 3611 4.7); fields as sent, by name:
    loss, discard, burst_density, gap_density (of 256), burst_ms, gap_ms, rtt_ms, esd_ms,
    r_factor, mos_lq, mos_cq (x10); the rest zero."""
    m = {k: 0 for k in ("loss", "discard", "burst_density", "gap_density", "burst_ms", "gap_ms")}
    m |= {"rtt_ms": 0, "esd_ms": 0, "r_factor": 127, "mos_lq": 127, "mos_cq": 127} | metrics
    block = struct.pack(
        "!BBHIBBBBHHHHBBBBBBBBBBHHH",
        7,
        0,
        8,
        source,
        m["loss"],
        m["discard"],
        m["burst_density"],
        m["gap_density"],
        m["burst_ms"],
        m["gap_ms"],
        m["rtt_ms"],
        m["esd_ms"],
        127,  # signal level: unavailable
        127,  # noise level
        127,  # residual echo return loss
        16,  # Gmin
        m["r_factor"],
        127,  # external R factor
        m["mos_lq"],
        m["mos_cq"],
        0,  # receiver configuration
        0,
        40,  # jitter buffer nominal, maximum, absolute maximum (ms)
        80,
        200,
    )
    return _rtcp(207, 0, struct.pack("!I", ssrc) + block)
