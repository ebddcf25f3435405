"""DTLS 1.0/1.2 records (RFC 6347) as DTLS-SRTP (RFC 5764) uses them on the browser leg: the
handshake that sets up the SRTP keys, then alerts (close_notify at hangup).

What is parsed from one UDP payload (a datagram holds one or more records, and must be
nothing but records): each record's content type, version, epoch and sequence number; of a
handshake record in epoch 0 (not yet encrypted) its message header (type, message_seq,
fragment offset and length: a message may be split over records), and of a whole
ClientHello or ServerHello the use_srtp extension's SRTP protection profiles. Records of a
later epoch are encrypted: only their content type is known.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, FINISHED = 1, 2, 20
_VERSIONS = {0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2"}
_RECORD_HEADER = 13
_HANDSHAKE_HEADER = 12
_USE_SRTP = 14

HANDSHAKE_NAMES = {
    0: "HelloRequest",
    1: "ClientHello",
    2: "ServerHello",
    3: "HelloVerifyRequest",
    4: "NewSessionTicket",
    11: "Certificate",
    12: "ServerKeyExchange",
    13: "CertificateRequest",
    14: "ServerHelloDone",
    15: "CertificateVerify",
    16: "ClientKeyExchange",
    20: "Finished",
}
_CONTENT_NAMES = {
    CHANGE_CIPHER_SPEC: "ChangeCipherSpec",
    ALERT: "Alert",
    HANDSHAKE: "Handshake",
    APPLICATION_DATA: "Application Data",
}
#: RFC 5764 and RFC 7714 protection profiles
SRTP_PROFILES = {
    0x0001: "SRTP_AES128_CM_HMAC_SHA1_80",
    0x0002: "SRTP_AES128_CM_HMAC_SHA1_32",
    0x0007: "SRTP_AEAD_AES_128_GCM",
    0x0008: "SRTP_AEAD_AES_256_GCM",
}


@dataclass(frozen=True)
class Handshake:
    type: int
    length: int  # of the whole message
    message_seq: int
    fragment_offset: int
    fragment_length: int
    srtp_profiles: tuple[int, ...] = ()  # a whole ClientHello's offer, a ServerHello's choice

    @property
    def name(self) -> str:
        return HANDSHAKE_NAMES.get(self.type, f"Handshake type {self.type}")


@dataclass(frozen=True)
class DtlsRecord:
    content_type: int
    version: int
    epoch: int
    sequence: int
    length: int
    handshake: Handshake | None  # an epoch 0 handshake record's message header

    @property
    def encrypted(self) -> bool:
        return self.epoch > 0

    @property
    def name(self) -> str:
        """What the ladder calls it: the handshake message, or the content type."""
        if self.handshake is not None:
            return self.handshake.name
        if self.content_type == HANDSHAKE and self.encrypted:
            # In DTLS 1.2 the one handshake message sent after ChangeCipherSpec is Finished.
            return "Finished (encrypted)"
        name = _CONTENT_NAMES.get(self.content_type, f"content type {self.content_type}")
        return f"{name} (encrypted)" if self.encrypted and self.content_type != CHANGE_CIPHER_SPEC else name

    @property
    def version_name(self) -> str:
        return _VERSIONS.get(self.version, f"version 0x{self.version:04x}")


def parse(payload: bytes) -> tuple[DtlsRecord, ...] | None:
    """The DTLS records of a UDP payload, or None when it is not DTLS: every byte must belong
    to a record of a known content type and version."""
    records = []
    pos = 0
    while pos < len(payload):
        if pos + _RECORD_HEADER > len(payload):
            return None
        content_type, version, epoch, seq_high, seq_low, length = struct.unpack_from("!BHHHIH", payload, pos)
        body = payload[pos + _RECORD_HEADER : pos + _RECORD_HEADER + length]
        if content_type not in _CONTENT_NAMES or version not in _VERSIONS or len(body) < length:
            return None
        handshake = _handshake(body) if content_type == HANDSHAKE and epoch == 0 else None
        records.append(
            DtlsRecord(content_type, version, epoch, (seq_high << 32) | seq_low, length, handshake)
        )
        pos += _RECORD_HEADER + length
    return tuple(records) if records else None


def _handshake(body: bytes) -> Handshake | None:
    if len(body) < _HANDSHAKE_HEADER:
        return None
    kind = body[0]
    length = int.from_bytes(body[1:4], "big")
    message_seq = int.from_bytes(body[4:6], "big")
    offset = int.from_bytes(body[6:9], "big")
    fragment = int.from_bytes(body[9:12], "big")
    profiles: tuple[int, ...] = ()
    if kind in (CLIENT_HELLO, SERVER_HELLO) and offset == 0 and fragment == length:
        profiles = _srtp_profiles(kind, body[_HANDSHAKE_HEADER : _HANDSHAKE_HEADER + length])
    return Handshake(kind, length, message_seq, offset, fragment, profiles)


def _srtp_profiles(kind: int, hello: bytes) -> tuple[int, ...]:
    """The use_srtp extension's profiles in a whole hello; () when it has none or is cut."""
    pos = 2 + 32  # version, random
    try:
        pos += 1 + hello[pos]  # session id
        if kind == CLIENT_HELLO:
            pos += 1 + hello[pos]  # cookie
            pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
            pos += 1 + hello[pos]  # compression methods
        else:
            pos += 2 + 1  # the chosen cipher suite and compression method
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= min(end, len(hello)):
            ext, size = struct.unpack_from("!HH", hello, pos)
            if ext == _USE_SRTP and size >= 2:
                count = int.from_bytes(hello[pos + 4 : pos + 6], "big") // 2
                return struct.unpack_from(f"!{count}H", hello, pos + 6)
            pos += 4 + size
    except (IndexError, struct.error):
        pass
    return ()


def flight_label(records: tuple[DtlsRecord, ...]) -> str:
    """A datagram's records as the ladder names them, a message split over records once:
    "ServerHello, Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone"."""
    names: list[str] = []
    seen: set[tuple[int, int]] = set()
    for r in records:
        if r.handshake is not None:
            key = (r.handshake.type, r.handshake.message_seq)
            if key in seen:
                continue
            seen.add(key)
        elif names and names[-1] == r.name:
            continue
        names.append(r.name)
    return ", ".join(names)
