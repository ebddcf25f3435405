"""WebSocket (RFC 6455) in a TCP byte stream: the opening handshake, then the frames."""

from __future__ import annotations


def frames_start(data: bytes) -> int | None:
    """Where the frames begin: after an HTTP upgrade to websocket (the client's request or the
    server's 101); None when the stream does not open a WebSocket."""
    if not data.startswith((b"GET ", b"HTTP/1.1 101")):
        return None
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or b"websocket" not in data[:head_end].lower():
        return None
    return head_end + 4


def payloads(data: bytes, start: int = 0) -> list[tuple[int, bytes]]:
    """Text and binary frame payloads from byte `start` on, unmasked, each with its offset; the
    walk stops at a frame the stream does not hold whole."""
    out = []
    pos = start
    while pos + 2 <= len(data):
        b0, b1 = data[pos], data[pos + 1]
        opcode, masked, length = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        at = pos + 2
        if length == 126:
            length = int.from_bytes(data[at : at + 2], "big")
            at += 2
        elif length == 127:
            length = int.from_bytes(data[at : at + 8], "big")
            at += 8
        mask = data[at : at + 4] if masked else b""
        at += 4 if masked else 0
        if at + length > len(data):
            break
        payload = data[at : at + length]
        if masked:
            payload = _unmask(payload, mask)
        if opcode in (1, 2):
            out.append((at, payload))
        pos = at + length
    return out


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
