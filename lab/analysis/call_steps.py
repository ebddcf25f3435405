"""The 13 steps of a call as the product page documents them ("a call from a browser to a
mobile phone through a SIP server", shared/seeds/), found on the ladder of a real lab call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lab.analysis.ladder import LadderRow, ladder_rows
from lab.analysis.model import CallModel

Match = Callable[[LadderRow], bool]


def _arrow(src: str, dst: str, label: str) -> Match:
    return lambda r: (
        r.src == src and r.dst == dst and r.label.startswith(label) and r.style != "retransmission"
    )


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


@dataclass(frozen=True)
class CallStep:
    number: int
    text: str
    row: int | None  # index into ladder_rows(model); None for audio or when not found
    t: float | None
    shown_as: str


def call_steps(model: CallModel) -> list[CallStep]:
    rows = ladder_rows(model)
    found: list[CallStep] = []
    start = 0
    for number, text, match in CALL_STEPS:
        if match is None:
            streams = (
                ", ".join(f"{s.src_party}->{s.dst_party} {s.codec}" for s in model.streams) or "no RTP seen"
            )
            found.append(CallStep(number, text, None, None, streams))
            continue
        hit = next((i for i in range(start, len(rows)) if match(rows[i])), None)
        if hit is None:
            found.append(CallStep(number, text, None, None, "not in this call"))
            continue
        r = rows[hit]
        found.append(CallStep(number, text, hit, r.t, f"{r.src} -> {r.dst}: {r.label}"))
        start = hit + 1
    return found
