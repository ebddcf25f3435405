"""What a UAS answers to a request that is not well formed (RFC 3261 sections 8.2 and 18.3,
RFC 4475): pure text, no pjsua. lab.sip.endpoint applies it to what pjsip hands over."""

from __future__ import annotations

import re
import secrets

from lab.sip.message import METHODS, _fields, _number, header_params

_URI_SCHEMES = ("sip", "sips", "tel")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def _head_and_body(raw: bytes) -> tuple[list[str], bytes]:
    end = raw.find(b"\r\n\r\n")
    head, body = (raw, b"") if end < 0 else (raw[:end], raw[end + 4 :])
    return head.decode("latin-1").split("\r\n"), body  # every byte kept, as sent


def problem(raw: bytes) -> tuple[int, str] | None:
    """Why a request pjsip parsed must still be refused, as a status code and reason; None
    when it may go on. `raw` is the whole datagram."""
    lines, body = _head_and_body(raw)
    method = lines[0].split(" ", 1)[0]
    fields = _fields(lines[1:])
    cseq = [value for name, value in fields if name == "cseq"]
    if cseq and cseq[0].split()[-1:] != [method]:
        return 400, "CSeq method does not match the request method"  # RFC 4475 3.1.2.17
    lengths = [value for name, value in fields if name == "content-length"]
    if len(lengths) > 1:
        return 400, "more than one Content-Length"  # RFC 4475 3.3.9
    length = _number(lengths[0]) if lengths else None
    if length is not None and length > len(body):
        return 400, "Content-Length larger than the message"  # RFC 3261 18.3, RFC 4475 3.1.2.2
    return None


def unsupported(raw: bytes, supported: set[str]) -> list[str]:
    """The options of the request's Require header that are not in `supported` (420, RFC
    3261 section 8.2.2.3); never for ACK or CANCEL, which take no Require."""
    lines, _ = _head_and_body(raw)
    if lines[0].split(" ", 1)[0] in ("ACK", "CANCEL"):
        return []
    required = [
        option.strip()
        for name, value in _fields(lines[1:])
        if name == "require"
        for option in value.split(",")
        if option.strip()
    ]
    return [option for option in required if option.lower() not in supported]


def answer_unparsable(raw: bytes) -> tuple[bytes, int | None] | None:
    """The response to a request pjsip could not parse and the port it goes to (see
    _response_port; the host is the request's source); None for a response, an ACK, or a
    message with no Via to answer along.

    505 for another SIP version, 501 for an unknown method, 416 for a request URI with a
    scheme other than sip, sips or tel, else 400 (RFC 4475 3.1.2, 3.3.1-3.3.3)."""
    lines, _ = _head_and_body(raw)
    start = lines[0].split()
    if len(start) < 3 or start[0].startswith("SIP/") or start[0] == "ACK":
        return None
    fields = _fields(lines[1:])
    vias = [value for name, value in fields if name == "via"]
    if not vias:
        return None
    method, uri, version = start[0], start[1], start[-1]
    scheme = _SCHEME.match(uri)
    if version != "SIP/2.0":
        code, reason = 505, "Version Not Supported"
    elif method not in METHODS and re.fullmatch(r"[A-Za-z0-9.!%*_+`'~-]+", method):
        code, reason = 501, "Not Implemented"
    elif scheme is not None and scheme.group(1).lower() not in _URI_SCHEMES:
        code, reason = 416, "Unsupported URI Scheme"
    else:
        code, reason = 400, "Bad Request"
    out = [f"SIP/2.0 {code} {reason}"]
    out += [f"Via: {value}" for value in vias]
    for name, title in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq")):
        value = next((v for n, v in fields if n == name), None)
        if value is None:
            continue
        if name == "to" and "tag" not in header_params(value):
            value += f";tag={secrets.token_hex(4)}"
        out.append(f"{title}: {value}")
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode("latin-1"), _response_port(vias[0])


def _response_port(via: str) -> int | None:
    """Where a response goes on UDP (RFC 3261 18.2.2, RFC 3581): None for the request's
    source port (rport asked for), else the sent-by port, 5060 when it has none."""
    if "rport" in header_params(via):
        return None
    sent_by = via.split(";", 1)[0].split()
    port = _number(sent_by[-1].rpartition(":")[2]) if sent_by and ":" in sent_by[-1] else None
    return port if port is not None and 0 < port < 65536 else 5060
