"""The 13 steps of a call as the product page documents them ("a call from a browser to a
mobile phone through a SIP server", shared/seeds/), found on the ladder of a real lab call;
and the steps of what the page calls "WebRTC", the browser leg's own setup."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab.analysis.ladder import LadderRow, ladder_rows
from lab.analysis.model import CallModel

Match = Callable[[LadderRow], bool]


def _arrow(src: str, dst: str, label: str) -> Match:
    return lambda r: (
        r.src == src and r.dst == dst and r.label.startswith(label) and r.style != "retransmission"
    )


def _label(label: str) -> Match:
    """An arrow by its label alone: the browser leg's setup may go via the Internet party."""
    return lambda r: r.label.startswith(label) and r.style != "retransmission"


# (step, what the product page says, which arrow shows it; the first match after the previous step)
CALL_STEPS: tuple[tuple[int, str, Match | None], ...] = (
    (
        1,
        "The browser starts the call: Session.createCall(), call.call()",
        _arrow("Browser", "Gateway", "call()"),
    ),
    (2, "The gateway sends SIP INVITE to the SIP server", _arrow("Gateway", "SIP server", "INVITE")),
    (
        3,
        "The SIP server sends INVITE to the GSM/PSTN gateway",
        _arrow("SIP server", "PSTN gateway", "INVITE"),
    ),
    (4, "The GSM/PSTN gateway reaches the mobile phone", _arrow("PSTN gateway", "Mobile phone", "INVITE")),
    (5, "Confirmation from the GSM/PSTN gateway", _arrow("PSTN gateway", "SIP server", "200 OK (INVITE)")),
    (6, "Confirmation from the SIP server", _arrow("SIP server", "Gateway", "200 OK (INVITE)")),
    (7, "The browser gets CALL_STATUS.ESTABLISHED", _arrow("Gateway", "Browser", "ESTABLISHED")),
    (8, "Both sides exchange audio (RTP; SRTP on the browser leg)", None),
    (9, "The browser hangs up: call.hangup()", _arrow("Browser", "Gateway", "hangup()")),
    (10, "The gateway sends SIP BYE to the SIP server", _arrow("Gateway", "SIP server", "BYE")),
    (11, "The SIP server sends BYE to the GSM/PSTN gateway", _arrow("SIP server", "PSTN gateway", "BYE")),
    (12, "Confirmation from the GSM/PSTN gateway", _arrow("PSTN gateway", "SIP server", "200 OK (BYE)")),
    (13, "Confirmation from the SIP server", _arrow("SIP server", "Gateway", "200 OK (BYE)")),
)


def _finished(r: LadderRow) -> bool:
    return r.label.startswith("DTLS") and "Finished" in r.label and r.style != "retransmission"


# The browser leg's setup, in its own order: it runs beside steps 1-7 (the offer goes with
# call(), the gateway answers it before the phone does).
WEBRTC_STEPS: tuple[tuple[str, str, Match | None], ...] = (
    (
        "W1",
        "The SDP offer over the WebSocket: codecs, ICE candidates, DTLS fingerprint and role",
        _label("SDP offer"),
    ),
    (
        "W2",
        "The SDP answer: the codec chosen, the far end's candidates and fingerprint",
        _label("SDP answer"),
    ),
    (
        "W3",
        "ICE connectivity check: a STUN Binding request on the candidate pair",
        _label("STUN Binding Request"),
    ),
    ("W4", "The STUN Binding success response", _label("STUN Binding Success Response")),
    ("W5", "The DTLS handshake starts: ClientHello (offering SRTP profiles)", _label("DTLS ClientHello")),
    ("W6", "The DTLS client's ChangeCipherSpec and Finished", _finished),
    ("W7", "The DTLS server's ChangeCipherSpec and Finished: the handshake is done", _finished),
    ("W8", "SRTP with the keys of the handshake (DTLS-SRTP)", None),
)


@dataclass(frozen=True)
class CallStep:
    number: int | str
    text: str
    row: int | None  # index into ladder_rows(model); None for audio or when not found
    t: float | None
    shown_as: str


def call_steps(model: CallModel) -> list[CallStep]:
    """The product page's 13 steps on this call's ladder."""
    streams = ", ".join(f"{s.src_party}->{s.dst_party} {s.codec}" for s in model.streams) or "no RTP seen"
    return _find(model, CALL_STEPS, streams)


def webrtc_steps(model: CallModel) -> list[CallStep]:
    """The browser leg's setup on this call's ladder: SDP offer and answer, ICE check, DTLS
    handshake, then SRTP (its streams)."""
    srtp = [s for s in model.streams if model.srtp(s)]
    return _find(
        model,
        WEBRTC_STEPS,
        ", ".join(f"{s.src_party}->{s.dst_party} {s.codec}" for s in srtp) or "no SRTP seen",
    )


def _find(
    model: CallModel, steps: Sequence[tuple[int | str, str, Match | None]], media: str
) -> list[CallStep]:
    rows = ladder_rows(model)
    found: list[CallStep] = []
    start = 0
    for number, text, match in steps:
        if match is None:
            found.append(CallStep(number, text, None, None, media))
            continue
        hit = next((i for i in range(start, len(rows)) if match(rows[i])), None)
        if hit is None:
            found.append(CallStep(number, text, None, None, "not in this call"))
            continue
        r = rows[hit]
        found.append(CallStep(number, text, hit, r.t, f"{r.src} -> {r.dst}: {r.label}"))
        start = hit + 1
    return found
