"""SIP messages as text (RFC 3261 section 7): the lab's one SIP parser. The pjsua2 parties read
the requests pjsua2 hands them with it, the analysis reads captures with it. No pjsua2 here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.sip.sdp import SdpMedia, parse_sdp

METHODS = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
)
#: Compact header names (RFC 3261 section 7.3.3 and the IANA SIP header registry).
COMPACT = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "n": "identity-info",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_BLANK_LINE = re.compile(r"\r?\n\r?\n")
# A header value's pieces: quoted strings and <URI>s, whose ; and , are not separators.
_PIECES = re.compile(r'"(?:[^"\\]|\\.)*"?|<[^>]*>?|[;,]|[^";,<]+')
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"?')
_ESCAPE = re.compile(r"\\(.)")
_DIGITS = re.compile(r"[0-9]{1,10}")  # int() of thousands of digits raises, and no SIP number needs them
_SECRET_HEADERS = re.compile(r"^((?:proxy-)?authorization\s*:\s*)([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
_USER_CHARACTERS = frozenset("+-_.*#")


def _is_start_line(line: str) -> bool:
    """A status line, or a request line of a method the lab knows (as Wireshark's heuristic)."""
    if line.startswith("SIP/2.0 "):
        return True
    return line.split(" ", 1)[0] in METHODS and " SIP/2.0" in line


def looks_like_sip(payload: bytes) -> bool:
    line = payload[: payload.find(b"\n")] if b"\n" in payload else payload
    return _is_start_line(line.decode("latin-1"))


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    """(lower-case full name, value) of each header line; a line starting with white space
    continues the previous one (folding, RFC 3261 section 7.3.1)."""
    fields: list[tuple[str, str]] = []
    current = False  # the previous line was a header that a folded line may continue
    for line in lines:
        if line[:1] in (" ", "\t"):
            if current:
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip()}".strip())
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        current = bool(sep) and _TOKEN.fullmatch(name) is not None
        if current:
            fields.append((COMPACT.get(name, name), value.strip()))
    return fields


def _parts(value: str) -> list[str]:
    """A header field's first value cut at its top-level semicolons: the address (or Via's
    sent-by) and then each parameter."""
    parts = [""]
    for piece in _PIECES.findall(value):
        if piece == ",":
            break
        if piece == ";":
            parts.append("")
        else:
            parts[-1] += piece
    return parts


def header_params(value: str) -> dict[str, str]:
    """The parameters of a header field's first value, names lower-case, quotes removed:
    `"A;B" <sip:a@b;lr>;tag=x1;rport, <sip:c@d>` -> {"tag": "x1", "rport": ""}."""
    params: dict[str, str] = {}
    for part in _parts(value)[1:]:
        name, _, param = part.partition("=")
        param = param.strip()
        if param.startswith('"'):
            param = _ESCAPE.sub(r"\1", param[1:-1] if param.endswith('"') and len(param) > 1 else param[1:])
        params.setdefault(name.strip().lower(), param)
    return params


def _number(text: str) -> int | None:
    return int(text) if _DIGITS.fullmatch(text) else None


def _uri_user(uri: str) -> str:
    """`sip:+7999@host;x=y` -> `+7999`; "" when the URI is not sip/sips or has no user."""
    scheme, colon, rest = uri.strip().partition(":")
    user, at, _ = rest.partition("@")
    return user if colon and at and scheme.lower() in ("sip", "sips") else ""


def uri_of(name_addr: str) -> str:
    """The URI of a From/To/Contact value: `"A" <sip:a@b;lr>;tag=x` -> `sip:a@b;lr`."""
    address = _QUOTED.sub("", _parts(name_addr)[0])
    return (address.split("<", 1)[1].split(">", 1)[0] if "<" in address else address).strip()


def user_of(name_addr: str) -> str:
    """`"Alice" <sip:VKP009@127.0.0.3>;tag=x` -> `VKP009`; "" when there is no SIP URI or its
    user is not a plain name or number."""
    user = _uri_user(uri_of(name_addr))
    return user if all(c.isalnum() or c in _USER_CHARACTERS for c in user) else ""


def redact(text: str) -> str:
    """Digest credentials out of a raw message: what reports and logs may show."""
    return _SECRET_HEADERS.sub(lambda m: m.group(1) + "[redacted]", text)


@dataclass(frozen=True)
class ParsedSip:
    start_line: str
    headers: dict[str, str]  # lower-case full names (compact forms expanded), first occurrence
    body: str
    raw: str  # credentials redacted

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        """The request's method, or for a response the method in its CSeq."""
        if self.is_request:
            return self.start_line.split(" ", 1)[0]
        cseq = self.headers.get("cseq", "").split()
        return cseq[-1] if cseq else ""

    @property
    def status(self) -> int | None:
        if self.is_request:
            return None
        parts = self.start_line.split(" ", 2)
        return _number(parts[1]) if len(parts) > 1 else None

    @property
    def reason(self) -> str:
        parts = self.start_line.split(" ", 2)
        return parts[2] if not self.is_request and len(parts) > 2 else ""

    @property
    def request_uri(self) -> str:
        parts = self.start_line.split(" ")
        return parts[1] if self.is_request and len(parts) > 1 else ""

    @property
    def request_user(self) -> str:
        """The user part of the request URI: `INVITE sip:+7999@host SIP/2.0` -> `+7999`."""
        return _uri_user(self.request_uri.split(";", 1)[0])

    def tag(self, header: str) -> str:
        """The tag parameter of the From or To header."""
        return header_params(self.headers.get(header, "")).get("tag", "")

    @property
    def branch(self) -> str:
        """The branch of the top Via."""
        return header_params(self.headers.get("via", "")).get("branch", "")

    @property
    def sdp(self) -> tuple[SdpMedia, ...]:
        if "application/sdp" not in self.headers.get("content-type", "").lower():
            return ()
        return parse_sdp(self.body)


def parse_sip(data: bytes | str) -> ParsedSip | None:
    """One SIP message (the whole of `data`: a datagram, or one message of a stream); None
    when it is not SIP. Lines may end in CRLF or, as lenient parsers accept, LF alone."""
    text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    blank = _BLANK_LINE.search(text)
    head, body = (text[: blank.start()], text[blank.end() :]) if blank else (text, "")
    lines = [line.rstrip("\r") for line in head.split("\n")]
    if not _is_start_line(lines[0]):
        return None
    headers: dict[str, str] = {}
    for name, value in _fields(lines[1:]):
        headers.setdefault(name, value)
    return ParsedSip(start_line=lines[0].strip(), headers=headers, body=body, raw=redact(text))


def split_stream(buf: bytes) -> list[tuple[int, bytes]]:
    """The SIP messages in a byte stream (TCP, TLS), framed by their Content-Length (RFC 3261
    section 18.3), each with its offset; CRLF keep-alives between messages are skipped."""
    out = []
    pos = 0
    while pos < len(buf):
        while buf[pos : pos + 2] == b"\r\n":
            pos += 2
        end = buf.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        head = buf[pos:end].decode("latin-1").split("\r\n")
        length = next((value for name, value in _fields(head[1:]) if name == "content-length"), "")
        stop = end + 4 + (_number(length) or 0)
        if stop > len(buf):
            break
        out.append((pos, buf[pos:stop]))
        pos = stop
    return out
