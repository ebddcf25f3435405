"""The ladder's content: every arrow in time order. Data, not drawing: lab.plots draws it,
the live call view and tests read it."""

from __future__ import annotations

from dataclasses import dataclass

from lab.analysis.model import CallModel, LabEvent, SipMessage


@dataclass(frozen=True)
class LadderRow:
    t: float
    src: str
    dst: str
    label: str
    note: str  # SDP summary, or the transport for lab events
    style: str  # "sip", "failure", "retransmission", "event"


def ladder_rows(model: CallModel) -> list[LadderRow]:
    """The ladder's arrows in time order: SIP messages and the lab client's own events."""
    rows = [_sip_row(m) for m in model.messages] + [_event_row(e) for e in model.events]
    return sorted(rows, key=lambda r: r.t)


def _sip_row(m: SipMessage) -> LadderRow:
    style = "retransmission" if m.retransmission else "failure" if m.failure else "sip"
    note = "; ".join(media.summary for media in m.sdp)
    if m.src_party == m.dst_party:  # between two processes of one party (the PSTN channels)
        hop = f"port {m.src.rsplit(':', 1)[-1]} -> {m.dst.rsplit(':', 1)[-1]}"
        note = f"{hop}; {note}" if note else hop
    label = m.label if m.is_request else f"{m.label} ({m.method})"
    return LadderRow(m.t, m.src_party, m.dst_party, label, note, style)


def _event_row(e: LabEvent) -> LadderRow:
    return LadderRow(e.t, e.src_party, e.dst_party, e.label, "WebSocket", "event")
