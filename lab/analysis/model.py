"""The call model: built once from a capture (and the lab's recordings), read by everything
else. Plots and reports are pure functions of it; nothing here talks to live processes."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lab.analysis import dtls, pcap, rtcp, sctp, stun
from lab.analysis.hops import NetworkHop, network_hops
from lab.analysis.pcap import CaptureError, Packets
from lab.analysis.quality import EModel, Pesq, e_model
from lab.analysis.rtp import (
    LossBursts,
    RtpHeaders,
    RtpSeries,
    RtpStats,
    decode_headers,
    loss_bursts,
    stream_stats,
)
from lab.analysis.sip import stream_messages
from lab.analysis.stun import StunMessage
from lab.config import CALL_HEADER, LabConfig
from lab.sip.message import ParsedSip, parse_sip
from lab.sip.sdp import STATIC_PT, Codec, SdpMedia


@dataclass(frozen=True)
class Participant:
    name: str
    address: str  # ip (lab parties) or ip:port


@dataclass(frozen=True)
class SipMessage:
    index: int
    frame: int  # 1-based, as Wireshark numbers frames
    t: float  # seconds since the capture's first packet
    src: str  # ip:port
    dst: str
    src_party: str
    dst_party: str
    transport: str  # UDP, TCP, WS, SCTP
    start_line: str
    method: str  # request method, or the CSeq method of a response
    status: int | None
    reason: str
    call_id: str
    cseq: str
    sdp: tuple[SdpMedia, ...]
    raw: str  # credentials redacted
    retransmission: bool
    lab_call: str  # the lab's call id header, if any

    @property
    def is_request(self) -> bool:
        return self.status is None

    @property
    def label(self) -> str:
        return self.method if self.status is None else f"{self.status} {self.reason}".strip()

    @property
    def failure(self) -> bool:
        return self.status is not None and self.status >= 400 and self.status not in (401, 407)


@dataclass(frozen=True)
class Dialog:
    call_id: str
    messages: tuple[int, ...]  # indexes into CallModel.messages
    request_uri: str
    parties: tuple[str, ...]


@dataclass(frozen=True)
class RtpStream:
    src: str
    src_port: int
    dst: str
    dst_port: int
    src_party: str
    dst_party: str
    ssrc: int
    pt: int
    codec: str
    clock_rate: int
    stats: RtpStats
    bursts: LossBursts
    quality: EModel
    series: RtpSeries = field(repr=False)
    #: what the stream's receiving end said it saw, in its RTCP (lab/analysis/rtcp.py)
    said: rtcp.Said = rtcp.NOTHING_SAID

    @property
    def label(self) -> str:
        return f"{self.src_party} -> {self.dst_party} {self.codec}"


@dataclass(frozen=True)
class WebrtcPacket:
    """One datagram of the browser leg's own setup, before and beside its SRTP: an ICE check
    (lab.analysis.stun) or DTLS records (lab.analysis.dtls)."""

    frame: int  # 1-based, as Wireshark numbers frames
    t: float  # seconds since the capture's first packet
    src: str  # ip:port
    dst: str
    src_party: str
    dst_party: str
    stun: StunMessage | None
    dtls: tuple[dtls.DtlsRecord, ...]
    retransmission: bool  # DTLS: a flight sent again (no answer came in time)

    @property
    def label(self) -> str:
        if self.stun is not None:
            error = f" {self.stun.error}" if self.stun.error is not None else ""
            nominates = ", USE-CANDIDATE" if self.stun.use_candidate else ""
            return f"STUN {self.stun.name}{error}{nominates}"
        return f"DTLS {dtls.flight_label(self.dtls)}"


@dataclass(frozen=True)
class LabEvent:
    """Something the lab's client logged that no capture shows (its WebSocket signaling)."""

    t: float  # seconds since the capture's first packet
    src_party: str
    dst_party: str
    label: str
    note: str = ""  # what the message carried, e.g. an SDP's summary


@dataclass(frozen=True)
class CallModel:
    source: str
    start: float  # capture clock of the first packet
    parties: tuple[Participant, ...]
    messages: tuple[SipMessage, ...]
    dialogs: tuple[Dialog, ...]
    calls: tuple[tuple[int, ...], ...]  # dialogs correlated into calls (indexes into dialogs)
    streams: tuple[RtpStream, ...]
    tcp_retransmissions: int
    truncated: bool
    events: tuple[LabEvent, ...] = ()
    pesq: tuple[Pesq, ...] = ()
    #: each stream that crossed a network party, measured before and after it
    hops: tuple[NetworkHop, ...] = ()
    #: the browser leg's ICE checks and DTLS handshake, in capture order
    webrtc: tuple[WebrtcPacket, ...] = ()

    def party_names(self) -> list[str]:
        return [p.name for p in self.parties]

    def srtp(self, stream: RtpStream) -> bool:
        """DTLS-SRTP: a DTLS handshake ran between the stream's own addresses and ports."""
        ends = {_endpoint(stream.src, stream.src_port), _endpoint(stream.dst, stream.dst_port)}
        return any({p.src, p.dst} == ends for p in self.webrtc if p.dtls)


# --- building -------------------------------------------------------------------------


#: The lab's network parties, whose streams are hops of another party's stream.
NETWORK_NAMES = frozenset(p.name for p in LabConfig().networks.values())


def lab_party_names(cfg: LabConfig | None = None) -> dict[str, str]:
    cfg = cfg or LabConfig()
    return {p.host: p.name for p in cfg.parties}


def load(
    path: str | Path, names: dict[str, str] | None = None, fallback_pts: dict[int, Codec] | None = None
) -> CallModel:
    """The call model of a capture file; CaptureError when it cannot be read or holds neither
    SIP nor RTP. RTP with no SIP (a media server's capture, a mirror port on the RTP VLAN) is
    found as tshark's RTP heuristic finds it: streams and their statistics, no ladder.

    fallback_pts names payload types on RTP flows no SDP in the capture describes (the lab's
    WebRTC leg, whose SDP travels over the client's WebSocket)."""
    packets = pcap.read(path)
    model = build(packets, str(path), lab_party_names() if names is None else names, fallback_pts or {})
    if not model.messages and not model.streams:
        raise CaptureError(f"{path}: no SIP messages and no RTP in {len(packets.frames.ts)} packets")
    return model


def _first_bytes(packets: Packets) -> np.ndarray:
    """Each UDP payload's first byte (0 when empty): what tells SIP, STUN, DTLS and RTP apart."""
    udp = packets.udp
    first = np.zeros(len(udp.payload), dtype=np.uint8)
    has = udp.length > 0
    first[has] = packets.frames.data[udp.payload[has]]
    return first


#: A SIP message found in a capture: time, frame (0-based), source, destination, transport.
Found = tuple[float, int, str, str, str, ParsedSip]


def _sip_messages(packets: Packets) -> tuple[list[Found], int]:
    streamed, tcp_retransmissions = _stream_sip(packets.tcp, packets.sctp)
    found = _datagram_sip(packets) + streamed
    found.sort(key=lambda row: (row[0], row[1]))
    return found, tcp_retransmissions


def _datagram_sip(packets: Packets, first_frame: int = 0) -> list[Found]:
    """SIP in UDP datagrams (one message each); frames counted from `first_frame`."""
    udp = packets.udp
    first = _first_bytes(packets)
    candidates = np.nonzero((first >= ord("A")) & (first <= ord("Z")) & (udp.length >= 20))[0]
    found = []
    for i in candidates:
        parsed = parse_sip(packets.payload(int(i)))
        if parsed is not None:
            src = _endpoint(udp.addresses[int(udp.src[i])], int(udp.sport[i]))
            dst = _endpoint(udp.addresses[int(udp.dst[i])], int(udp.dport[i]))
            found.append((float(udp.ts[i]), first_frame + int(udp.frame[i]), src, dst, "UDP", parsed))
    return found


def _stream_sip(
    tcp: list[pcap.TcpSegment], sctp_packets: Iterable[pcap.SctpPacket]
) -> tuple[list[Found], int]:
    """SIP in TCP (plain or WebSocket) and SCTP streams, and the count of retransmitted TCP
    segments left out."""
    found = []
    stream, retransmitted = stream_messages(tcp)
    for m in stream:
        parsed = parse_sip(m.data)
        if parsed is not None:
            found.append(
                (m.ts, m.frame, _endpoint(m.src, m.sport), _endpoint(m.dst, m.dport), m.transport, parsed)
            )
    for message in sctp.user_messages(sctp_packets):
        parsed = parse_sip(message.data)
        if parsed is not None:
            src, dst = _endpoint(message.src, message.sport), _endpoint(message.dst, message.dport)
            found.append((message.ts, message.frame, src, dst, "SCTP", parsed))
    return found, retransmitted


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


class _Parties:
    """Names the capture's endpoints: lab hosts by role, others as ip:port."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.seen: dict[str, Participant] = {}

    def name(self, endpoint: str) -> str:
        host = _host(endpoint)
        if host in self.names:
            key, name, address = host, self.names[host], host
        else:
            key, name, address = endpoint, endpoint, endpoint
        if key not in self.seen:
            self.seen[key] = Participant(name, address)
        return self.seen[key].name

    def ordered(self, lab_order: Iterable[str]) -> tuple[Participant, ...]:
        order = {name: i for i, name in enumerate(lab_order)}
        first_seen = list(self.seen.values())
        return tuple(sorted(first_seen, key=lambda p: (order.get(p.name, len(order)), first_seen.index(p))))


class SipLog:
    """SIP messages in the order a capture yields them, numbered, their parties named, each
    marked a retransmission when one like it (same hop, transaction and start line) came
    before: a whole capture's at once, or a growing one's piece by piece (lab.analysis.live)."""

    def __init__(self, parties: _Parties) -> None:
        self.parties = parties
        self.messages: list[SipMessage] = []
        self._seen: set[tuple[str, ...]] = set()

    def add(self, found: list[Found], start: float) -> None:
        """Append messages found (in capture order); `start` is the capture's first time."""
        for ts, frame, src, dst, transport, parsed in found:
            key = (
                src,
                dst,
                parsed.start_line,
                parsed.headers.get("call-id", ""),
                parsed.headers.get("cseq", ""),
                parsed.branch,
                parsed.tag("to"),
            )
            retransmission = key in self._seen
            self._seen.add(key)
            self.messages.append(
                SipMessage(
                    index=len(self.messages),
                    frame=frame + 1,
                    t=ts - start,
                    src=src,
                    dst=dst,
                    src_party=self.parties.name(src),
                    dst_party=self.parties.name(dst),
                    transport=transport,
                    start_line=parsed.start_line,
                    method=parsed.method,
                    status=parsed.status,
                    reason=parsed.reason,
                    call_id=parsed.headers.get("call-id", ""),
                    cseq=parsed.headers.get("cseq", ""),
                    sdp=parsed.sdp,
                    raw=parsed.raw,
                    retransmission=retransmission,
                    lab_call=parsed.headers.get(CALL_HEADER.lower(), ""),
                )
            )


def build(
    packets: Packets, source: str, names: dict[str, str], fallback_pts: dict[int, Codec] | None = None
) -> CallModel:
    found, tcp_retransmissions = _sip_messages(packets)
    start = float(packets.frames.ts.min()) if len(packets.frames.ts) else 0.0
    parties = _Parties(names)
    log = SipLog(parties)
    log.add(found, start)
    messages = log.messages
    dialogs = _dialogs(messages)
    headers = decode_headers(packets.frames.data, packets.udp.payload, packets.udp.length)
    streams, hops = _media(packets.udp, headers, messages, parties, fallback_pts or {}, start)
    reports = rtcp.read(packets)
    streams = tuple(
        dataclasses.replace(s, said=rtcp.said(reports, s.src, s.dst, s.ssrc, s.clock_rate)) for s in streams
    )
    webrtc = _webrtc_packets(packets, start, parties)
    return CallModel(
        source=source,
        start=start,
        parties=parties.ordered(names.values()),
        messages=tuple(messages),
        dialogs=dialogs,
        calls=_correlate(dialogs, messages),
        streams=streams,
        tcp_retransmissions=tcp_retransmissions,
        truncated=packets.frames.truncated,
        hops=hops,
        webrtc=webrtc,
    )


#: DTLS handshake fragments sent so far, per direction
Fragments = dict[tuple[str, str], set[tuple[int, ...]]]


def _webrtc_packets(
    packets: Packets, start: float, parties: _Parties, first_frame: int = 0, sent: Fragments | None = None
) -> tuple[WebrtcPacket, ...]:
    """STUN and DTLS datagrams, told apart from the rest by their first byte as RFC 7983
    demultiplexes them on one port (0-3 STUN, 20-63 DTLS), then parsed whole. A capture read
    in pieces passes where each piece's frames start and the fragments sent before it."""
    udp = packets.udp
    first = _first_bytes(packets)
    candidates = np.nonzero(((first <= 3) & (udp.length >= 20)) | ((first >= 20) & (first <= 63)))[0]
    found: list[WebrtcPacket] = []
    sent = {} if sent is None else sent
    for i in candidates:
        payload = packets.payload(int(i))
        message = stun.parse(payload) if first[i] <= 3 else None
        records = dtls.parse(payload) if first[i] >= 20 else None
        if message is None and records is None:
            continue
        src = _endpoint(udp.addresses[int(udp.src[i])], int(udp.sport[i]))
        dst = _endpoint(udp.addresses[int(udp.dst[i])], int(udp.dport[i]))
        retransmission = False
        if records:
            # A handshake fragment is sent once; a flight that comes again was retransmitted.
            keys = {
                _fragment(r) for r in records if r.content_type in (dtls.HANDSHAKE, dtls.CHANGE_CIPHER_SPEC)
            }
            before = sent.setdefault((src, dst), set())
            retransmission = bool(keys) and keys <= before
            before |= keys
        found.append(
            WebrtcPacket(
                frame=first_frame + int(udp.frame[i]) + 1,
                t=float(udp.ts[i]) - start,
                src=src,
                dst=dst,
                src_party=parties.name(src),
                dst_party=parties.name(dst),
                stun=message,
                dtls=records or (),
                retransmission=retransmission,
            )
        )
    return tuple(found)


def _fragment(record: dtls.DtlsRecord) -> tuple[int, ...]:
    """What a handshake record carries, the same in a retransmission (its record number is not)."""
    h = record.handshake
    if h is None:  # ChangeCipherSpec, or the encrypted Finished
        return (record.content_type, record.epoch)
    return (record.content_type, h.type, h.message_seq, h.fragment_offset)


def _with_network_delay(stream: RtpStream, hops: tuple[NetworkHop, ...]) -> RtpStream:
    """A stream leaving a network party: its E-model counts the delay the network added."""
    hop = next((h for h in hops if h.network == stream.src_party and h.ssrc == stream.ssrc), None)
    if hop is None:
        return stream
    quality = e_model(stream.stats, stream.codec, stream.bursts.burst_ratio, hop.delay_ms, stream.clock_rate)
    return dataclasses.replace(stream, quality=quality)


def _dialogs(messages: list[SipMessage]) -> tuple[Dialog, ...]:
    by_call: dict[str, list[SipMessage]] = {}
    for m in messages:
        by_call.setdefault(m.call_id, []).append(m)
    dialogs = []
    for call_id, ms in by_call.items():
        first_request = next((m for m in ms if m.is_request), ms[0])
        uri = first_request.start_line.split(" ")[1] if first_request.is_request else ""
        party_order: list[str] = []
        for m in ms:
            for p in (m.src_party, m.dst_party):
                if p not in party_order:
                    party_order.append(p)
        dialogs.append(Dialog(call_id, tuple(m.index for m in ms), uri, tuple(party_order)))
    return tuple(dialogs)


def _user(uri: str) -> str:
    return uri.split(":", 1)[-1].split("@", 1)[0] if "@" in uri else ""


def _same_number(a: str, b: str) -> bool:
    """Equal users, or numbers where one is the other with a prefix a gateway added."""
    if a == b:
        return a != ""
    da, db = "".join(c for c in a if c.isdigit()), "".join(c for c in b if c.isdigit())
    short, long = sorted((da, db), key=len)
    return len(short) >= 7 and long.endswith(short)


_REPLACES_RE = re.compile(r"^Replaces:\s*([^;\s]+)", re.MULTILINE | re.IGNORECASE)


def _correlate(dialogs: tuple[Dialog, ...], messages: list[SipMessage]) -> tuple[tuple[int, ...], ...]:
    """Dialogs of one call across a B2BUA: the lab's call header when present; an INVITE with
    Replaces (attended transfer) joins the call of the dialog it replaces; else an INVITE to
    the same number (give or take a prefix) that leaves the party which just received one
    (within 2 s)."""
    group_of: dict[int, int] = {}
    groups: list[list[int]] = []
    lab_groups: dict[str, int] = {}
    for i, d in enumerate(dialogs):
        ms = [messages[k] for k in d.messages]
        tag = next((m.lab_call for m in ms if m.lab_call), "")
        invite = next((m for m in ms if m.method == "INVITE" and m.is_request), None)
        target = None
        replaced = _REPLACES_RE.search(invite.raw) if invite is not None else None
        replaced_dialog = next(
            (j for j in range(i) if replaced and dialogs[j].call_id == replaced.group(1)), None
        )
        if tag and tag in lab_groups:
            target = lab_groups[tag]
        elif replaced_dialog is not None:
            target = group_of[replaced_dialog]
        elif invite is not None:
            for j in range(i):
                other = [messages[k] for k in dialogs[j].messages]
                first = next((m for m in other if m.method == "INVITE" and m.is_request), None)
                if (
                    first is not None
                    and _same_number(
                        _user(first.start_line.split(" ")[1]), _user(invite.start_line.split(" ")[1])
                    )
                    and 0 <= invite.t - first.t < 2.0
                    and any(m.dst_party == invite.src_party for m in other if m.method == "INVITE")
                ):
                    target = group_of[j]
                    break
        if target is None:
            target = len(groups)
            groups.append([])
        groups[target].append(i)
        group_of[i] = target
        if tag:
            lab_groups.setdefault(tag, target)
    return tuple(tuple(g) for g in groups)


def _sdp_endpoints(messages: list[SipMessage]) -> dict[tuple[str, int], dict[int, Codec]]:
    """Every address:port an SDP offered for RTP, with its payload-type map (latest wins)."""
    return {key: pts for _, key, pts in _sdp_media(messages) if pts is not None}


def _sdp_media(messages: list[SipMessage]) -> list[tuple[int, tuple[str, int], dict[int, Codec] | None]]:
    """Every address:port an SDP set up, in order: the frame (0-based) of the message, and the
    payload-type map of its RTP, or None where the media is not RTP (m=image udptl t38 of a
    switch to fax, or any m= line without RTP payload types)."""
    return [
        (m.frame - 1, (media.address, media.port), {c.pt: c for c in media.codecs} if media.codecs else None)
        for m in messages
        for media in m.sdp
        if media.port and media.address
    ]


def _rtp_by_sdp(udp: pcap.Udp, messages: list[SipMessage]) -> tuple[np.ndarray, np.ndarray]:
    """Which datagrams flow to or from an address:port an SDP set up (Wireshark's SDP-made
    conversations), and which of those the SDP in force when they were captured says are RTP:
    the latest SDP before the packet on either of its two ends. A re-INVITE that moves the
    port to T.38 (UDPTL) ends its RTP there, as Wireshark's conversation set up by the later
    SDP takes the packets after it. Packets before the first SDP on an end follow that SDP."""
    index = {a: i for i, a in enumerate(udp.addresses)}
    setup = sorted(
        (index[host] * 65536 + port, frame, pts is not None)
        for frame, (host, port), pts in _sdp_media(messages)
        if host in index
    )
    n = len(udp.frame)
    by_sdp, rtp = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if not setup:
        return by_sdp, rtp
    keys = np.array([k for k, _, _ in setup], dtype=np.int64)
    frames = np.array([f for _, f, _ in setup], dtype=np.int64)
    states = np.array([ok for _, _, ok in setup], dtype=bool)
    ends, rank = np.unique(keys, return_inverse=True)
    ordered = rank.reshape(-1) * (1 << 40) + frames  # the SDPs by end, then by frame
    in_force = np.full(n, -2, dtype=np.int64)  # frame of the SDP in force (-1: one after the packet)
    for hosts, ports in ((udp.src, udp.sport), (udp.dst, udp.dport)):
        key = hosts * 65536 + ports
        at = np.minimum(np.searchsorted(ends, key), len(ends) - 1)
        known = ends[at] == key
        first = np.searchsorted(ordered, at * (1 << 40))  # the end's first SDP
        before = np.searchsorted(ordered, at * (1 << 40) + udp.frame) - 1  # its last before the packet
        entry = np.where(before >= first, before, first)
        when = np.where(before >= first, frames[entry], -1)
        take = known & (when > in_force)
        in_force[take] = when[take]
        by_sdp |= take
        rtp[take] = states[entry[take]]
    return by_sdp, rtp


def _media(
    udp: pcap.Udp,
    headers: RtpHeaders,
    messages: list[SipMessage],
    parties: _Parties,
    fallback_pts: dict[int, Codec],
    start: float,
) -> tuple[tuple[RtpStream, ...], tuple[NetworkHop, ...]]:
    """The RTP streams among datagrams `udp` (their RTP headers decoded: `headers`), each that
    crossed a network party measured before and after it, and the E-model counting that."""
    streams = _rtp_streams(udp, headers, messages, parties, fallback_pts)
    hops = network_hops(streams, NETWORK_NAMES, start)
    return tuple(_with_network_delay(s, hops) for s in streams), hops


def _rtp_streams(
    udp: pcap.Udp,
    headers: RtpHeaders,
    messages: list[SipMessage],
    parties: _Parties,
    fallback_pts: dict[int, Codec],
) -> tuple[RtpStream, ...]:
    endpoints = _sdp_endpoints(messages)
    if len(udp.frame) == 0:
        return ()
    candidate = headers.rtp.copy()
    addresses = udp.addresses
    # Like Wireshark: RTP is what flows to or from an address:port an SDP set up for RTP; other
    # flows are RTP where its heuristic finds them (all of them in a capture without SDP).
    by_sdp, rtp_by_sdp = _rtp_by_sdp(udp, messages)
    candidate &= (by_sdp & rtp_by_sdp) | _heuristic_flows(udp, candidate & ~by_sdp)
    sel = np.nonzero(candidate)[0]
    if len(sel) == 0:
        return ()
    arrival, seq, ts, ssrc = udp.ts[sel], headers.seq[sel], headers.timestamp[sel], headers.ssrc[sel]
    marker, pt = headers.marker[sel], headers.pt[sel]
    src, sport, dst, dport = udp.src[sel], udp.sport[sel], udp.dst[sel], udp.dport[sel]
    flow = (src << 48) | (sport << 32) | (dst << 16) | dport  # address indexes stay far below 2**15
    flows, flow_id = np.unique(flow, return_inverse=True)
    keys, inverse = np.unique((flow_id.reshape(-1) << 32) | ssrc, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
    uniq = [
        (int(f >> 48), int((f >> 32) & 0xFFFF), int((f >> 16) & 0xFFFF), int(f & 0xFFFF), int(k & 0xFFFFFFFF))
        for f, k in zip(flows[keys >> 32], keys, strict=True)
    ]
    streams = []
    for k, (s, sp, d, dp, ss) in enumerate(uniq):
        rows = order[bounds[k] : bounds[k + 1]]
        src_ip, dst_ip = addresses[s], addresses[d]
        pt_map = endpoints.get((dst_ip, dp)) or endpoints.get((src_ip, sp)) or fallback_pts
        stream_pt = pt[rows]
        clock = np.zeros(len(rows), dtype=np.int64)
        for value in np.flatnonzero(np.bincount(stream_pt)):  # np.unique would import numpy.ma
            clock[stream_pt == value] = _clock(pt_map, int(value))
        stats, series = stream_stats(arrival[rows], seq[rows], ts[rows], stream_pt, marker[rows], clock)
        bursts = loss_bursts(series.seq)
        main_pt = int(np.bincount(stream_pt).argmax())
        codec = pt_map.get(main_pt) or STATIC_PT.get(main_pt)
        codec_name = codec.name if codec else f"PT{main_pt}"
        src_end, dst_end = _endpoint(src_ip, sp), _endpoint(dst_ip, dp)
        streams.append(
            RtpStream(
                src=src_ip,
                src_port=sp,
                dst=dst_ip,
                dst_port=dp,
                src_party=parties.name(src_end),
                dst_party=parties.name(dst_end),
                ssrc=ss,
                pt=main_pt,
                codec=codec_name,
                clock_rate=codec.rate if codec else 0,
                stats=stats,
                bursts=bursts,
                quality=e_model(stats, codec_name, bursts.burst_ratio, rate=codec.rate if codec else 0),
                series=series,
            )
        )
    streams.sort(key=lambda s: (s.stats.start, s.src, s.src_port))
    return tuple(streams)


def _clock(pt_map: dict[int, Codec], pt: int) -> int:
    codec = pt_map.get(pt) or STATIC_PT.get(pt)
    if codec is None or codec.name.lower() == "telephone-event":
        return 0
    return codec.rate


def _heuristic_flows(udp: pcap.Udp, candidate: np.ndarray, minimum: int = 4) -> np.ndarray:
    """RTP without SDP: UDP flows whose packets all look like RTP (version 2, not RTCP)."""
    if not candidate.any():
        return candidate
    flow = udp.src * (1 << 40) + udp.sport * (1 << 24) + udp.dst * 65536 + udp.dport
    flows, inverse = np.unique(flow, return_inverse=True)
    total = np.bincount(inverse, minlength=len(flows))
    good = np.bincount(inverse, weights=candidate.astype(np.int64), minlength=len(flows))
    rtp_flow = (good >= minimum) & (good >= 0.5 * total)
    return candidate & rtp_flow[inverse]
