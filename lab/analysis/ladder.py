"""The ladder's content: every arrow in time order. Data, not drawing: lab.plots draws it,
the live call view and tests read it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lab.analysis import dtls
from lab.analysis.model import CallModel, LabEvent, SipMessage, WebrtcPacket
from lab.analysis.stun import StunMessage


@dataclass(frozen=True)
class LadderRow:
    t: float
    src: str
    dst: str
    label: str
    note: str  # SDP summary, or the transport for lab events
    style: str  # "sip", "failure", "retransmission", "event", "webrtc"


def ladder_rows(model: CallModel) -> list[LadderRow]:
    """The ladder's arrows in time order: SIP messages, the lab client's own events and the
    browser leg's ICE checks and DTLS handshake."""
    rows = [_sip_row(m) for m in model.messages] + [_event_row(e) for e in model.events]
    rows += webrtc_rows(model.webrtc)
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
    return LadderRow(
        e.t, e.src_party, e.dst_party, e.label, f"WebSocket; {e.note}" if e.note else "WebSocket", "event"
    )


def webrtc_rows(packets: tuple[WebrtcPacket, ...]) -> list[LadderRow]:
    """The browser leg's setup, compressed: ICE sends dozens of Binding requests (every
    candidate pair, then a consent check every few seconds), so each direction shows its first
    request and its first with USE-CANDIDATE, each with its response, and counts the rest in a
    note; error responses all show. Every DTLS handshake datagram is an arrow (a flight, or
    part of one); encrypted application data (a data channel) shows once per direction, with
    its count."""
    notes = _ice_notes([(p, p.stun) for p in packets if p.stun is not None])
    asked = {p.stun.transaction for p in packets if p.stun is not None and p.frame in notes}
    answered: set[tuple[bytes, str, str]] = set()
    data_rows: dict[tuple[str, str], tuple[int, int]] = {}  # direction: its first row, datagrams
    rows = []
    for p in packets:
        way = (p.src_party, p.dst_party)
        if p.stun is not None:
            key = (p.stun.transaction, *way)
            if p.stun.error is not None:
                rows.append(LadderRow(p.t, p.src_party, p.dst_party, p.label, "ICE", "failure"))
            elif p.frame in notes:
                rows.append(_webrtc_row(p, notes[p.frame]))
            elif p.stun.is_response and p.stun.transaction in asked and key not in answered:
                answered.add(key)
                rows.append(_webrtc_row(p, f"mapped address {p.stun.mapped}" if p.stun.mapped else ""))
        elif all(r.content_type == dtls.APPLICATION_DATA for r in p.dtls):
            at, seen = data_rows.get(way, (len(rows), 0))
            if not seen:
                rows.append(_webrtc_row(p, ""))
            data_rows[way] = (at, seen + 1)
        else:
            rows.append(_webrtc_row(p, _dtls_note(p)))
    for at, seen in data_rows.values():
        rows[at] = dataclasses.replace(rows[at], note=f"{seen} datagrams this way")
    return rows


def _ice_notes(checks: list[tuple[WebrtcPacket, StunMessage]]) -> dict[int, str]:
    """The requests shown (by frame), each with its note: per direction the first, counting
    the rest, and the first with USE-CANDIDATE."""
    requests: dict[tuple[str, str], list[tuple[WebrtcPacket, StunMessage]]] = {}
    for p, message in checks:
        if message.is_request:
            requests.setdefault((p.src_party, p.dst_party), []).append((p, message))
    notes: dict[int, str] = {}
    for sent in requests.values():
        first, first_message = sent[0]
        nominating = [p for p, message in sent if message.use_candidate]
        counted = f"{len(sent)} Binding request{'s' if len(sent) > 1 else ''} this way"
        if nominating:
            counted += f", {len(nominating)} with USE-CANDIDATE"
        role = first_message.role
        notes[first.frame] = f"ICE {role}: {counted}" if role else f"ICE: {counted}"
        if nominating:
            notes.setdefault(nominating[0].frame, "ICE: nominates this candidate pair")
    return notes


def _webrtc_row(p: WebrtcPacket, note: str) -> LadderRow:
    return LadderRow(
        p.t, p.src_party, p.dst_party, p.label, note, "retransmission" if p.retransmission else "webrtc"
    )


def _dtls_note(p: WebrtcPacket) -> str:
    version = p.dtls[0].version_name
    profiles = [
        dtls.SRTP_PROFILES.get(x, f"0x{x:04x}")
        for r in p.dtls
        if r.handshake is not None
        for x in r.handshake.srtp_profiles
    ]
    if profiles:
        return f"{version}; use_srtp {', '.join(profiles)}"
    if any(r.encrypted for r in p.dtls):
        return f"{version}; epoch {max(r.epoch for r in p.dtls)}: encrypted"
    return version
