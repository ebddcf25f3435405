"""The SDP edits that send a leg's media through its network party, on pjsua's own SDPs."""

from __future__ import annotations

from lab.config import LabConfig
from lab.network.detour import Detour, answering, media_ports, offering, readdress
from lab.network.legs import plan

PSTN_OFFER = (
    "v=0\r\no=- 4004937876 4004937876 IN IP4 127.0.0.4\r\ns=pjmedia\r\nb=AS:84\r\nt=0 0\r\n"
    "a=X-nat:0\r\nm=audio 30002 RTP/AVP 3 0 8 120\r\nc=IN IP4 127.0.0.4\r\nb=TIAS:64000\r\n"
    "a=rtcp:30003 IN IP4 127.0.0.4\r\na=sendrecv\r\na=rtpmap:3 GSM/8000\r\n"
)


def test_the_network_replaces_the_partys_media_address_and_nothing_else() -> None:
    edited = readdress(PSTN_OFFER, "127.0.0.4", "127.0.0.9")
    assert "c=IN IP4 127.0.0.9\r\n" in edited and "a=rtcp:30003 IN IP4 127.0.0.9\r\n" in edited
    assert "o=- 4004937876 4004937876 IN IP4 127.0.0.4\r\n" in edited  # the origin stays who made it
    assert media_ports(PSTN_OFFER) == [30002, 30003]


def test_only_an_impaired_leg_gets_an_offerers_edit_with_its_specs() -> None:
    cfg = LabConfig()
    items = plan(impair=["mobile:to-phone:loss=5%,seed=2"])
    assert offering(cfg, "sip", "c1", "127.0.0.2", "to-browser", items) is None
    edit = offering(cfg, "mobile", "c1", "127.0.0.4", "to-browser", items)
    assert edit == Detour(
        cfg.mobile_network,
        ("127.0.0.9", 7070),
        "c1",
        "127.0.0.4",
        "to-browser",
        {"to-phone": "loss=5%,seed=2"},
    )


def test_an_answerer_joins_the_network_the_offer_came_from_or_none() -> None:
    cfg = LabConfig()
    assert answering(cfg, "c1", "127.0.0.5", "to-phone", PSTN_OFFER) is None  # a direct offer
    via_network = readdress(PSTN_OFFER, "127.0.0.4", "127.0.0.9")
    edit = answering(cfg, "c1", "127.0.0.5", "to-phone", via_network)
    assert isinstance(edit, Detour) and edit.network == cfg.mobile_network and edit.impair is None


def test_a_network_that_does_not_answer_leaves_the_media_on_the_direct_path() -> None:
    cfg = LabConfig()
    silent = Detour(cfg.mobile_network, ("127.0.0.69", 7070), "c1", "127.0.0.4", "to-browser")
    assert silent(PSTN_OFFER, "") == PSTN_OFFER
