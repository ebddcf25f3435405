"""STUN (RFC 5389) as ICE (RFC 8445) uses it on the browser leg: the connectivity checks
(Binding requests and their responses) and, once the call is up, the consent checks (RFC 7675).

What is parsed from one UDP payload: the message type (class and method), the transaction
id, the attribute types in order, and of those attributes the ones the ladder shows:
USE-CANDIDATE (the controlling agent nominates this pair), ICE-CONTROLLING / ICE-CONTROLLED
(the agent's role), ERROR-CODE and XOR-MAPPED-ADDRESS. MESSAGE-INTEGRITY and FINGERPRINT are
not verified: that takes the ICE password, which travels in the SDP, not in the capture.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
HEADER = 20

XOR_MAPPED_ADDRESS = 0x0020
ERROR_CODE = 0x0009
USE_CANDIDATE = 0x0025
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

_CLASSES = {0x000: "Request", 0x010: "Indication", 0x100: "Success Response", 0x110: "Error Response"}
_METHODS = {0x001: "Binding"}


@dataclass(frozen=True)
class StunMessage:
    type: int  # the 14-bit message type: 0x0001 Binding Request, 0x0101 its Success Response
    transaction: bytes  # 12 bytes
    attributes: tuple[int, ...]  # attribute types in order
    error: int | None = None  # ERROR-CODE's class * 100 + number
    mapped: str = ""  # XOR-MAPPED-ADDRESS as ip:port

    @property
    def method(self) -> int:
        return (self.type & 0x000F) | ((self.type & 0x00E0) >> 1) | ((self.type & 0x3E00) >> 2)

    @property
    def kind(self) -> int:
        """The class bits: 0x000 request, 0x010 indication, 0x100 success, 0x110 error."""
        return self.type & 0x0110

    @property
    def is_request(self) -> bool:
        return self.kind == 0x000

    @property
    def is_response(self) -> bool:
        return self.kind in (0x100, 0x110)

    @property
    def use_candidate(self) -> bool:
        return USE_CANDIDATE in self.attributes

    @property
    def role(self) -> str:
        """The sender's ICE role as its request says: controlling, controlled, or ""."""
        if ICE_CONTROLLING in self.attributes:
            return "controlling"
        if ICE_CONTROLLED in self.attributes:
            return "controlled"
        return ""

    @property
    def name(self) -> str:
        """As Wireshark names it: "Binding Request", "Binding Success Response", ..."""
        method = _METHODS.get(self.method, f"Method 0x{self.method:03x}")
        return f"{method} {_CLASSES[self.kind]}"


def parse(payload: bytes) -> StunMessage | None:
    """The STUN message in a UDP payload, or None when it is not one: the first two bits zero,
    the magic cookie, and a length that covers exactly the attributes that follow."""
    if len(payload) < HEADER or payload[0] & 0xC0:
        return None
    msg_type, length, cookie = struct.unpack_from("!HHI", payload)
    if cookie != MAGIC_COOKIE or length % 4 or HEADER + length != len(payload):
        return None
    attributes: list[int] = []
    error: int | None = None
    mapped = ""
    pos = HEADER
    while pos < len(payload):
        if pos + 4 > len(payload):
            return None
        kind, size = struct.unpack_from("!HH", payload, pos)
        value = payload[pos + 4 : pos + 4 + size]
        if len(value) < size:
            return None
        attributes.append(kind)
        if kind == ERROR_CODE and size >= 4:
            error = (value[2] & 0x07) * 100 + value[3]
        elif kind == XOR_MAPPED_ADDRESS and size >= 8:
            mapped = _xor_address(value, payload[4:HEADER])
        pos += 4 + (size + 3) // 4 * 4
    return StunMessage(msg_type, payload[8:HEADER], tuple(attributes), error, mapped)


def _xor_address(value: bytes, cookie_and_id: bytes) -> str:
    family, xport = value[1], struct.unpack_from("!H", value, 2)[0]
    port = xport ^ (MAGIC_COOKIE >> 16)
    key = cookie_and_id[:4] if family == 1 else cookie_and_id
    raw = bytes(a ^ b for a, b in zip(value[4 : 4 + len(key)], key, strict=False))
    if family == 1 and len(raw) == 4:
        return f"{ipaddress.IPv4Address(raw)}:{port}"
    if family == 2 and len(raw) == 16:
        return f"[{ipaddress.IPv6Address(raw)}]:{port}"
    return ""
