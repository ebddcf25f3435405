from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from lab.analysis.ladder import ladder_rows
from lab.analysis.latency import passed_through
from lab.analysis.model import load
from lab.config import LabConfig

from .conftest import FIXTURES, shared


def test_lab_call_model(lab_capture: Path) -> None:
    model = load(lab_capture)
    assert [p.name for p in model.parties] == [
        "Browser",
        "Gateway",
        "SIP server",
        "PSTN gateway",
        "Mobile phone",
    ]
    invites = [m for m in model.messages if m.method == "INVITE" and m.is_request and not m.retransmission]
    hops = [(m.src_party, m.dst_party) for m in invites]
    # 407-challenged first attempt, then the call: gateway -> SIP server -> PSTN gateway -> phone
    assert hops[-3:] == [
        ("Gateway", "SIP server"),
        ("SIP server", "PSTN gateway"),
        ("PSTN gateway", "Mobile phone"),
    ]
    times = [m.t for m in invites]
    assert times == sorted(times)
    # The proxied dialog and the B2BUA's second dialog are one call.
    invite_dialogs = {
        i
        for i, d in enumerate(model.dialogs)
        if any(model.messages[k].method == "INVITE" for k in d.messages)
    }
    assert len(invite_dialogs) == 2
    assert any(invite_dialogs <= set(group) for group in model.calls)
    byes = [(m.src_party, m.dst_party) for m in model.messages if m.method == "BYE" and m.is_request]
    assert byes == [
        ("Gateway", "SIP server"),
        ("SIP server", "PSTN gateway"),
        ("PSTN gateway", "Mobile phone"),
    ]
    legs = {(s.src_party, s.dst_party): s.codec for s in model.streams}
    assert legs[("Gateway", "PSTN gateway")] == "PCMU" and legs[("PSTN gateway", "Mobile phone")] == "GSM"
    assert ("Browser", "Gateway") in legs
    # Opus on the browser leg: the gateway transcoded, so each leg has a stream of its own.
    assert not passed_through(model.streams, LabConfig())


def test_foreign_capture_names_parties_by_address() -> None:
    model = load(shared("sip_ipv6_udp.pcap"))
    assert model.parties[0].name == "[fe80::21a:a0ff:fe07:32e0]:5060"
    assert [m.label for m in model.messages][:3] == ["INVITE", "100 Trying", "200 OK"]


def test_b2bua_legs_correlated_without_lab_headers() -> None:
    model = load(shared("sip_tcp_websocket.pcap"), names={})
    call_ids = [[model.dialogs[i].call_id for i in group] for group in model.calls]
    assert any(len(group) == 2 for group in call_ids), call_ids


def test_attended_transfer_capture() -> None:
    """A recorded attended transfer (SIP only): the INVITE with Replaces goes between two
    channels of the PSTN gateway, and joins the call of the consultation it replaces."""
    model = load(FIXTURES / "attended_transfer_sip.pcapng")
    refer = next(m for m in model.messages if m.label == "REFER" and m.src_party == "Gateway")
    refer_to = unquote(next(h for h in refer.raw.split("\r\n") if h.lower().startswith("refer-to:")))
    consultation = next(i for i, d in enumerate(model.dialogs) if f"Replaces={d.call_id};" in refer_to)
    replacing = next(i for i, d in enumerate(model.dialogs) if d.parties == ("PSTN gateway",))
    assert any({consultation, replacing} <= set(call) for call in model.calls)
    rows = [r for r in ladder_rows(model) if r.src == r.dst == "PSTN gateway"]
    assert [r.label for r in rows][:4] == ["INVITE", "100 Trying (INVITE)", "200 OK (INVITE)", "ACK"]
    assert rows[0].note.startswith("port 5060 -> 5061")
