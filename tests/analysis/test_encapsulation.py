"""SIP inside the encapsulations of real mirror ports and capture setups, found by the lab
exactly where tshark finds it: each capture is made here, one INVITE in each."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lab.analysis.model import load
from lab.analysis.wireshark import fields

INVITE = (
    "INVITE sip:+79991234567@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:+79991234567@127.0.0.2>\r\nCall-ID: {call_id}\r\n"
    "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
MACS = bytes(range(12))
ETHERNET, LINUX_SLL, LINUX_SLL2 = 1, 113, 276


def ipv4(proto: int, payload: bytes, src: str = "127.0.0.1", dst: str = "127.0.0.2") -> bytes:
    addresses = bytes(int(x) for x in f"{src}.{dst}".split("."))
    header = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0)
    return header + addresses + payload


def sip_over_ip(call_id: str) -> bytes:
    sip = INVITE.format(call_id=call_id).encode()
    return ipv4(17, struct.pack("!HHHH", 5060, 5060, 8 + len(sip), 0) + sip)


def ethernet(payload: bytes, *tags: int) -> bytes:
    vlans = b"".join(struct.pack("!HH", tpid, 100 + i) for i, tpid in enumerate(tags))
    return MACS + vlans + struct.pack("!H", 0x0800) + payload


def gre(proto: int, payload: bytes, seq: bool = False) -> bytes:
    header = struct.pack("!HH", 0x1000 if seq else 0, proto) + (struct.pack("!I", 7) if seq else b"")
    return ipv4(47, header + payload, "127.0.0.91", "127.0.0.92")  # the mirror port's tunnel


ERSPAN_II = struct.pack("!HHI", 0x1000 | 100, 0x0001, 0)  # version 1 (type II), session 1
ERSPAN_III = struct.pack("!HHII", 0x2000 | 100, 0x0001, 0, 0)  # version 2 (type III), no subheader

FRAMES = {
    "vlan": (ETHERNET, lambda p: ethernet(p, 0x8100)),
    "qinq": (ETHERNET, lambda p: ethernet(p, 0x88A8, 0x8100)),
    "gre": (ETHERNET, lambda p: ethernet(gre(0x0800, p))),
    "gre-ethernet": (ETHERNET, lambda p: ethernet(gre(0x6558, ethernet(p)))),
    "erspan-i": (ETHERNET, lambda p: ethernet(gre(0x88BE, ethernet(p)))),
    "erspan-ii": (ETHERNET, lambda p: ethernet(gre(0x88BE, ERSPAN_II + ethernet(p, 0x8100), seq=True))),
    "erspan-iii": (ETHERNET, lambda p: ethernet(gre(0x22EB, ERSPAN_III + ethernet(p), seq=True))),
    "linux-cooked-v1": (LINUX_SLL, lambda p: struct.pack("!HHH8sH", 0, 1, 6, MACS[:8], 0x0800) + p),
    "linux-cooked-v2": (LINUX_SLL2, lambda p: struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, MACS[:8]) + p),
}


def write(path: Path, linktype: int, frame: bytes) -> Path:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    path.write_bytes(header + struct.pack("<IIII", 1, 0, len(frame), len(frame)) + frame)
    return path


@pytest.mark.parametrize("kind", sorted(FRAMES))
def test_sip_is_found_where_tshark_finds_it(kind: str, tmp_path: Path) -> None:
    linktype, wrap = FRAMES[kind]
    path = write(tmp_path / f"{kind}.pcap", linktype, wrap(sip_over_ip(f"call-{kind}")))
    assert fields(path, "sip", "sip.Call-ID") == [(f"call-{kind}",)], (
        "the capture made here is not what it claims to be"
    )
    model = load(path, names={})
    assert [(m.method, m.call_id, m.src, m.dst) for m in model.messages] == [
        ("INVITE", f"call-{kind}", "127.0.0.1:5060", "127.0.0.2:5060")
    ]
