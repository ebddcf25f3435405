"""Wireshark's view through pyshark agrees with the lab's call model on the same packets."""

from __future__ import annotations

from lab.analysis.model import load
from lab.analysis.wireshark import layer_fields

from .conftest import FIXTURES


def test_wireshark_dissects_the_same_invites_as_the_model() -> None:
    capture = FIXTURES / "lab_call.pcapng"
    model = load(capture, {})
    invites = [m for m in model.messages if m.method == "INVITE" and m.is_request]
    fields = layer_fields(capture, 'sip.Method == "INVITE"', "sip")
    assert [(f["call_id"], f["r_uri"]) for f in fields] == [
        (m.call_id, m.start_line.split()[1]) for m in invites
    ]
    assert layer_fields(capture, 'sip.Method == "INVITE"', "sip", limit=1)[0]["method"] == "INVITE"


async def test_pyshark_runs_where_an_event_loop_already_runs() -> None:
    """As in a notebook cell: pyshark's own loop must not meet the running one."""
    rows = layer_fields(FIXTURES / "lab_call.pcapng", 'sip.Method == "BYE"', "sip", limit=1)
    assert [r["method"] for r in rows] == ["BYE"]
