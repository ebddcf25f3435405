"""Read pcap and pcapng files into numpy arrays, fast.

Only the record walk is a Python loop (one struct unpack per packet); link, IP, UDP and
TCP headers are decoded for all packets at once with numpy. What comes out:

* `Udp`: one row per UDP datagram (time, addresses, ports, where its payload is);
* `TcpSegment`s: TCP payloads, for SIP over TCP and over WebSocket (few, decoded in Python);
* `SctpPacket`s: SCTP packets, for SIP over SCTP (their chunks: lab/analysis/sctp.py).

`read` takes a whole file; `GrowingCapture` reads a file still being written, piece by piece.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Link-layer types and the length of their header (ETHERNET is handled separately: VLANs).
ETHERNET, NULL, RAW, LOOP, LINUX_SLL, RAW_IP4, RAW_IP6, LINUX_SLL2 = 1, 0, 101, 108, 113, 228, 229, 276
_L2_FIXED = {NULL: 4, LOOP: 4, RAW: 0, 12: 0, 14: 0, LINUX_SLL: 16, LINUX_SLL2: 20, RAW_IP4: 0, RAW_IP6: 0}


class CaptureError(ValueError):
    """The file is not a capture we can read; the message says why in one line."""


@dataclass(frozen=True)
class Frames:
    """Every captured packet: where its bytes are in `data`, when, and its link type."""

    data: np.ndarray  # uint8 view of the whole file
    ts: np.ndarray  # float64 seconds since the epoch
    offset: np.ndarray  # int64 start of the packet's bytes
    caplen: np.ndarray  # int64 captured length
    linktype: np.ndarray  # int32
    truncated: bool  # the file ended inside a record


@dataclass(frozen=True)
class Udp:
    """UDP datagrams; addresses are indexes into `addresses` (text, IPv4 or IPv6)."""

    frame: np.ndarray  # index into Frames (0-based)
    ts: np.ndarray
    src: np.ndarray
    sport: np.ndarray
    dst: np.ndarray
    dport: np.ndarray
    payload: np.ndarray  # offset into data
    length: np.ndarray  # payload bytes captured
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class TcpSegment:
    frame: int
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    flags: int
    payload: bytes


@dataclass(frozen=True)
class SctpPacket:
    frame: int
    ts: float
    src: str
    dst: str
    data: bytes  # common header and chunks


@dataclass(frozen=True)
class Packets:
    frames: Frames
    udp: Udp
    tcp: list[TcpSegment]
    sctp: tuple[SctpPacket, ...] = ()

    def payload(self, i: int) -> bytes:
        """The UDP payload of datagram i."""
        start = int(self.udp.payload[i])
        return self.frames.data[start : start + int(self.udp.length[i])].tobytes()


def read(path: str | Path) -> Packets:
    frames = read_frames(path)
    return decode(frames)


# --- record walk ---------------------------------------------------------------------

# A record longer than this is damage, not a packet (Wireshark's limit for ordinary link types).
MAX_RECORD = 262144
_PCAP_MAGIC = {  # magic -> (byte order, seconds per fraction unit)
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


@dataclass(frozen=True)
class _Records:
    """Whole records a walk found in a buffer, and where the walk stopped: at the end of the
    buffer, at a record it does not hold whole (still being written, or cut short), or at
    damage."""

    offset: np.ndarray
    ts: np.ndarray
    caplen: np.ndarray
    linktype: np.ndarray
    stop: int

    def frames(self, raw: bytes, truncated: bool) -> Frames:
        return Frames(
            np.frombuffer(raw, dtype=np.uint8), self.ts, self.offset, self.caplen, self.linktype, truncated
        )


_NO_RECORDS = _Records(
    np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), 0
)


class _Pcap:
    """Classic pcap: a 24-byte file header, then records."""

    header = 24

    def __init__(self, raw: bytes, path: str | Path) -> None:
        self.order, self.unit = _PCAP_MAGIC[raw[:4]]
        (field,) = struct.unpack_from(self.order + "I", raw, 20)
        # The link type field's upper bits say whether frames end in an FCS (Ethernet's
        # trailer stays outside the IP length, so it is ignored); its reserved bits are zero.
        if field & 0x03FF0000:
            raise CaptureError(f"{path}: damaged pcap header (link type field {field:#010x})")
        self.linktype = field & 0xFFFF

    def walk(self, raw: bytes, pos: int) -> _Records:
        # Only the chain of lengths is walked in Python; the records' other fields are read
        # for all of them at once, from their offsets (the walk is most of a big file's time).
        length = struct.Struct(self.order + "I").unpack_from
        heads: list[int] = []
        add = heads.append
        last = len(raw) - 16  # the last place a record header fits
        while pos <= last:
            incl = length(raw, pos + 8)[0]
            if incl > MAX_RECORD or pos + incl > last:
                break
            add(pos)
            pos += 16 + incl
        at = np.asarray(heads, dtype=np.int64)
        # sec, frac, incl of every record: 12 bytes each, read in the file's byte order
        fields = rows(np.frombuffer(raw, dtype=np.uint8), at, 12).view(self.order + "u4")
        ts = fields[:, 0].astype(np.float64) + fields[:, 1].astype(np.float64) * self.unit
        return _Records(
            offset=at + 16,
            ts=ts,
            caplen=fields[:, 2].astype(np.int64),
            linktype=np.full(len(at), self.linktype, dtype=np.int32),
            stop=pos,
        )


class _Pcapng:
    """pcapng: blocks; a section header sets the byte order and starts a new interface list."""

    header = 0  # the section header is a block like the others

    def __init__(self) -> None:
        self.order = "<"
        self.links: list[int] = []
        self.resolutions: list[float] = []

    def walk(self, raw: bytes, pos: int) -> _Records:
        offsets: list[int] = []
        stamps: list[int] = []
        lens: list[int] = []
        link_of_packet: list[int] = []
        res_of_packet: list[float] = []
        end = len(raw)
        while pos + 12 <= end:
            (block_type,) = struct.unpack_from(self.order + "I", raw, pos)
            if block_type == 0x0A0D0D0A:  # its byte order mark says how to read its length
                bom = raw[pos + 8 : pos + 12]
                if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                    break
                order = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            else:
                order = self.order
            (block_len,) = struct.unpack_from(order + "I", raw, pos + 4)
            if block_len < 12 or block_len % 4 or pos + block_len > end:
                break
            if block_type == 0x0A0D0D0A:
                self.order, self.links, self.resolutions = order, [], []
            elif block_type == 1 and block_len >= 20:  # interface description
                self.links.append(struct.unpack_from(order + "H", raw, pos + 8)[0])
                self.resolutions.append(_if_tsresol(raw, pos + 16, pos + block_len - 4, order))
            elif block_type == 6 and block_len >= 32:  # enhanced packet
                iface, high, low, caplen = struct.unpack_from(order + "IIII", raw, pos + 8)
                if iface >= len(self.links) or caplen > block_len - 32:
                    break  # damage: Wireshark stops here too
                offsets.append(pos + 28)
                stamps.append((high << 32) | low)
                lens.append(caplen)
                link_of_packet.append(self.links[iface])
                res_of_packet.append(self.resolutions[iface])
            elif block_type == 3 and block_len >= 16:  # simple packet: no timestamp
                (orig,) = struct.unpack_from(order + "I", raw, pos + 8)
                offsets.append(pos + 12)
                stamps.append(0)
                lens.append(min(orig, block_len - 16))
                link_of_packet.append(self.links[0] if self.links else ETHERNET)
                res_of_packet.append(1e-6)
            pos += block_len
        return _Records(
            offset=np.asarray(offsets, dtype=np.int64),
            ts=np.asarray(stamps, dtype=np.float64) * np.asarray(res_of_packet, dtype=np.float64),
            caplen=np.asarray(lens, dtype=np.int64),
            linktype=np.asarray(link_of_packet, dtype=np.int32),
            stop=pos,
        )


def _format(raw: bytes, path: str | Path) -> _Pcap | _Pcapng:
    """The walker for a file that starts with `raw` (at least 24 bytes)."""
    if raw[:4] == _PCAPNG_MAGIC:
        return _Pcapng()
    if raw[:4] in _PCAP_MAGIC:
        return _Pcap(raw, path)
    raise CaptureError(f"{path}: not a pcap or pcapng file (starts with {raw[:4].hex()})")


def read_frames(path: str | Path) -> Frames:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if len(raw) < 24:
        raise CaptureError(f"{path}: too short to be a capture ({len(raw)} bytes)")
    walker = _format(raw, path)
    records = walker.walk(raw, walker.header)
    if len(records.offset) == 0 and records.stop < len(raw):
        raise CaptureError(f"{path}: damaged or cut short at byte {records.stop}, before any packet")
    return records.frames(raw, truncated=records.stop != len(raw))


class GrowingCapture:
    """A capture file still being written (dumpcap during a call), read as it grows: each
    read() returns the packets whose records were completed since the last read, reading only
    the bytes appended since. A record written in part is read again, whole, next time.

    A file not there yet, or with only part of its header, reads as no packets; one that is no
    capture raises CaptureError. Damage inside stops the reading there, as a cut does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.frames_read = 0  # packets returned so far: the file-wide index of the next read's first
        self._walker: _Pcap | _Pcapng | None = None
        self._offset = 0  # where the next record starts

    def read(self) -> Packets:
        """The packets completed since the last read()."""
        return decode(self._read_frames())

    def _read_frames(self) -> Frames:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        except OSError as exc:
            raise CaptureError(f"{self.path}: {exc.strerror or exc}") from None
        start = 0
        if self._walker is None and len(raw) >= 24:
            self._walker = _format(raw, self.path)
            start = self._walker.header
        records = self._walker.walk(raw, start) if self._walker is not None else _NO_RECORDS
        self._offset += records.stop
        self.frames_read += len(records.offset)
        return records.frames(raw, truncated=False)


def _if_tsresol(raw: bytes, pos: int, end: int, e: str) -> float:
    """Seconds per timestamp unit from an interface block's options (default microseconds)."""
    while pos + 4 <= end:
        code, length = struct.unpack_from(e + "HH", raw, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = raw[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


# --- header decoding, vectorised -------------------------------------------------------


def rows(data: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """The `width` bytes at each offset `at` of `data` (uint8), one row each: one gather of
    fixed-size items through a view with a one-byte stride (for a header of 8 bytes or more,
    faster than indexing each byte). Every row must lie inside `data`."""
    items = np.ndarray((max(len(data) - width + 1, 0),), dtype=f"V{width}", buffer=data, strides=(1,))
    return items[at].view(np.uint8).reshape(-1, width)


def _u16(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (data[at].astype(np.int64) << 8) | data[at + 1]


def _u32(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    return (_u16(data, at) << 16) | _u16(data, at + 2)


_VLAN_TAGS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad (QinQ), and the older QinQ tag
_IP_TYPES = (0x0800, 0x86DD)
_GRE = 47
_SCTP = 132
_MAX_TUNNELS = 3


def _ethernet_payload(data: np.ndarray, at: np.ndarray, caplen_end: np.ndarray) -> np.ndarray:
    """Offset of what an Ethernet frame at `at` carries, past up to two VLAN tags; -1 when
    that is not IP."""
    ethertype = _u16(data, np.minimum(at + 12, len(data) - 2))
    l2 = np.full(len(at), 14, dtype=np.int64)
    for _ in range(2):
        tagged = np.isin(ethertype, _VLAN_TAGS) & (at + l2 + 6 <= caplen_end)
        if not tagged.any():
            break
        ethertype[tagged] = _u16(data, at[tagged] + l2[tagged] + 2)
        l2[tagged] += 4
    return np.where(np.isin(ethertype, _IP_TYPES) & (at + l2 < caplen_end), at + l2, -1)


def _through_gre(data: np.ndarray, ip: int, end: int) -> int:
    """The inner IP header of a GRE packet whose outer IPv4 header is at `ip` (plain GRE,
    transparent Ethernet bridging, ERSPAN types I, II and III), or -1."""
    at = ip + (int(data[ip]) & 0x0F) * 4
    if at + 4 > end:
        return -1
    flags, proto = (int(data[i]) << 8 | int(data[i + 1]) for i in (at, at + 2))
    inner = at + 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
    if proto in _IP_TYPES:
        return inner
    if proto == 0x6558:  # transparent Ethernet bridging
        ethernet = inner
    elif proto == 0x88BE:  # ERSPAN type II has an 8-byte header; type I (no sequence number) none
        ethernet = inner + 8 if flags & 0x1000 else inner
    elif proto == 0x22EB and inner + 12 <= end:  # ERSPAN type III: 12 bytes, +8 with its O flag
        ethernet = inner + 12 + (8 if int(data[inner + 11]) & 0x01 else 0)
    else:
        return -1
    if ethernet + 14 > end:
        return -1
    return int(_ethernet_payload(data, np.array([ethernet]), np.array([end]))[0])


def _network_offsets(f: Frames) -> tuple[np.ndarray, np.ndarray]:
    """Offset of the IP header of each frame and its version (4, 6, or 0: not IP). Link
    layers: Ethernet with VLAN/QinQ tags, Linux cooked (v1, v2), raw IP, BSD loopback; IPv4
    GRE tunnels (mirror ports: ERSPAN I/II/III, transparent Ethernet, plain GRE) are opened."""
    data, off, n = f.data, f.offset, len(f.offset)
    end = off + f.caplen
    ip = np.full(n, -1, dtype=np.int64)
    for linktype in np.flatnonzero(np.bincount(f.linktype)):  # np.unique would import numpy.ma
        sel = np.nonzero(f.linktype == linktype)[0]
        if linktype == ETHERNET:
            sel = sel[f.caplen[sel] >= 14]
            ip[sel] = _ethernet_payload(data, off[sel], end[sel])
        elif int(linktype) in _L2_FIXED:
            ip[sel] = off[sel] + _L2_FIXED[int(linktype)]
    for _ in range(_MAX_TUNNELS):
        usable = (ip >= 0) & (ip + 20 <= end)
        gre = np.nonzero(usable & (data[np.where(usable, ip, 0)] >> 4 == 4))[0]
        gre = gre[data[ip[gre] + 9] == _GRE]
        if len(gre) == 0:
            break
        for i in gre:
            ip[i] = _through_gre(data, int(ip[i]), int(end[i]))
    usable = (ip >= 0) & (ip < end)
    version = np.zeros(n, dtype=np.int64)
    version[usable] = data[ip[usable]] >> 4
    return ip, version


def decode(f: Frames) -> Packets:
    data = f.data
    ip, version = _network_offsets(f)
    end = f.offset + f.caplen
    # per IP version: frame index, proto, l4 offset, src, dst (IPv4: integers; IPv6: 16 bytes), IP end
    found = []

    v4 = np.nonzero((version == 4) & (end - ip >= 20))[0]
    if len(v4):
        at = ip[v4]
        header = rows(data, at, 20)
        ihl = (header[:, 0] & 0x0F).astype(np.int64) * 4
        frag = header[:, 6:8].view(">u2")[:, 0] & 0x3FFF  # MF flag or a fragment offset: not a whole datagram
        keep = (frag == 0) & (ihl >= 20)
        v4, at, ihl, header = v4[keep], at[keep], ihl[keep], header[keep]
        total_length = header[:, 2:4].view(">u2")[:, 0].astype(np.int64)
        addresses = header[:, 12:20].view(">u4").astype(np.int64)  # source, destination
        found.append(
            (v4, header[:, 9].astype(np.int64), at + ihl, addresses[:, 0], addresses[:, 1], at + total_length)
        )
    v6 = np.nonzero((version == 6) & (end - ip >= 40))[0]
    if len(v6):
        at = ip[v6]
        header = rows(data, at, 40)
        payload_length = (header[:, 4].astype(np.int64) << 8) | header[:, 5]
        found.append(
            (
                v6,
                header[:, 6].astype(np.int64),
                at + 40,
                header[:, 8:24],
                header[:, 24:40],
                at + 40 + payload_length,
            )
        )
    if len(found) == 2:  # IPv4 beside IPv6: one table of IPv4-mapped IPv6 keys, frames in order
        v4_frame, v4_proto, v4_l4, v4_src, v4_dst, v4_end = found[0]
        found[0] = (v4_frame, v4_proto, v4_l4, _mapped(v4_src), _mapped(v4_dst), v4_end)
        frame, proto, l4, src, dst, ip_end = (np.concatenate([r[k] for r in found]) for k in range(6))
        order = np.argsort(frame, kind="stable")
        frame, proto, l4, src, dst, ip_end = (a[order] for a in (frame, proto, l4, src, dst, ip_end))
    elif found:
        frame, proto, l4, src, dst, ip_end = found[0]
    else:
        frame = proto = l4 = ip_end = np.zeros(0, dtype=np.int64)
        src = dst = np.zeros(0, dtype=np.int64)
    # Link-layer padding (short Ethernet frames) is not payload: stop at the IP length.
    packet_end = np.minimum(ip_end, end[frame])
    addresses, src_idx, dst_idx = _address_table(src, dst)

    udp_sel = np.nonzero((proto == 17) & (packet_end - l4 >= 8))[0]
    u_at = l4[udp_sel]
    u_frame = frame[udp_sel]
    u_header = rows(data, u_at, 8).view(">u2").astype(np.int64)  # ports, length, checksum
    u_len = np.minimum(u_header[:, 2] - 8, packet_end[udp_sel] - u_at - 8)
    udp = Udp(
        frame=u_frame,
        ts=f.ts[u_frame],
        src=src_idx[udp_sel],
        sport=u_header[:, 0],
        dst=dst_idx[udp_sel],
        dport=u_header[:, 1],
        payload=u_at + 8,
        length=np.maximum(u_len, 0),
        addresses=addresses,
    )

    tcp: list[TcpSegment] = []
    tcp_sel = np.nonzero((proto == 6) & (packet_end - l4 >= 20))[0]
    if len(tcp_sel):
        t_at = l4[tcp_sel]
        t_frame = frame[tcp_sel]
        t_end = packet_end[tcp_sel]
        header = (data[t_at + 12] >> 4).astype(np.int64) * 4
        start = t_at + header
        has_payload = np.nonzero(t_end > start)[0]
        sport, dport = _u16(data, t_at), _u16(data, t_at + 2)
        seq = _u32(data, t_at + 4)
        flags = data[t_at + 13]
        for j in has_payload:
            fi = int(t_frame[j])
            tcp.append(
                TcpSegment(
                    frame=fi,
                    ts=float(f.ts[fi]),
                    src=addresses[int(src_idx[tcp_sel[j]])],
                    sport=int(sport[j]),
                    dst=addresses[int(dst_idx[tcp_sel[j]])],
                    dport=int(dport[j]),
                    seq=int(seq[j]),
                    flags=int(flags[j]),
                    payload=data[int(start[j]) : int(t_end[j])].tobytes(),
                )
            )
    sctp = tuple(
        SctpPacket(
            int(frame[i]),
            float(f.ts[frame[i]]),
            addresses[int(src_idx[i])],
            addresses[int(dst_idx[i])],
            data[int(l4[i]) : int(packet_end[i])].tobytes(),
        )
        for i in np.nonzero((proto == _SCTP) & (packet_end - l4 >= 12))[0]
    )
    return Packets(frames=f, udp=udp, tcp=tcp, sctp=sctp)


def _mapped(ipv4: np.ndarray) -> np.ndarray:
    """IPv4 addresses (integers) as the 16 bytes of their IPv4-mapped IPv6 address."""
    keys = np.zeros((len(ipv4), 16), dtype=np.uint8)
    keys[:, 10:12] = 0xFF
    keys[:, 12:] = ipv4.astype(">u4").view(np.uint8).reshape(-1, 4)
    return keys


def _address_table(src: np.ndarray, dst: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The addresses in text, sorted as their IPv4-mapped IPv6 bytes, and each packet's source
    and destination as indexes into them. Addresses come as integers (IPv4 only: sorting them
    as numbers is sorting their bytes, and much faster) or as 16-byte rows."""
    import ipaddress

    both = np.concatenate([src, dst])
    if both.ndim == 1:
        table, inverse = np.unique(both, return_inverse=True)
        addresses = tuple(str(ipaddress.IPv4Address(int(k))) for k in table)
    else:
        table, inverse = np.unique(both.view("V16").reshape(-1), return_inverse=True)
        addresses = tuple(
            str(
                ipaddress.IPv4Address(k[12:])
                if k[:12] == b"\x00" * 10 + b"\xff\xff"
                else ipaddress.IPv6Address(k)
            )
            for k in map(bytes, table)
        )
    inverse = inverse.reshape(-1)
    return addresses, inverse[: len(src)], inverse[len(src) :]
