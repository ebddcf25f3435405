import dataclasses
import re
from pathlib import Path

import pytest

from lab.config import LabConfig, PhonePolicy, call_dir, new_call_id


def test_password_is_generated_and_never_in_repr() -> None:
    cfg = LabConfig().with_password()
    assert len(cfg.password) >= 12
    assert cfg.password not in repr(cfg)
    assert cfg.password not in repr(cfg.account())


def test_round_trips_through_its_json_file(tmp_path: Path) -> None:
    cfg = dataclasses.replace(
        LabConfig(), home=tmp_path, number_policies={"+79990000486": "busy"}
    ).with_password()
    cfg.save(tmp_path / "lab.json")
    assert (tmp_path / "lab.json").stat().st_mode & 0o777 == 0o600
    assert LabConfig.load(tmp_path / "lab.json") == cfg


def test_every_party_has_its_own_loopback_address() -> None:
    hosts = [p.host for p in LabConfig().parties]
    assert len(set(hosts)) == len(hosts)
    assert all(h.startswith("127.") for h in hosts)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("after:1.5", PhonePolicy("answer", 1.5)),
        ("answer", PhonePolicy("answer", 1.0)),
        ("busy", PhonePolicy("busy")),
        ("reject", PhonePolicy("reject")),
        ("never", PhonePolicy("never")),
    ],
)
def test_phone_policy_parses(text: str, policy: PhonePolicy) -> None:
    assert PhonePolicy.parse(text) == policy
    assert PhonePolicy.parse(policy.header_value()) == policy


@pytest.mark.parametrize("text", ["after:x", "after:-1", "sometimes", ""])
def test_phone_policy_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="answer policy"):
        PhonePolicy.parse(text)


@pytest.mark.parametrize("call_id", ["../etc", "a/b", "", "x" * 65, "a b", "abc\n"])
def test_call_dir_refuses_paths(call_id: str) -> None:
    with pytest.raises(ValueError, match="call id"):
        call_dir(LabConfig(), call_id)


def test_pstn_channels_share_the_gateways_address_on_their_own_ports() -> None:
    cfg = dataclasses.replace(LabConfig(), pstn_channel_count=3, gateway_workers=1)
    channels = cfg.pstn_channels
    assert [c.sip_address for c in channels] == ["127.0.0.4:5060", "127.0.0.4:5061", "127.0.0.4:5062"]
    assert [c.rtp_port for c in channels] == [30000, 30100, 30200]
    assert cfg.process("PSTN gateway ch2") == channels[1]
    with pytest.raises(KeyError, match="no party 'PSTN gateway ch9'; the lab runs Gateway, Gateway w1, SIP"):
        cfg.process("PSTN gateway ch9")


def test_the_gateway_and_the_phone_are_pools_of_4_calls_a_process() -> None:
    cfg = dataclasses.replace(LabConfig(), gateway_workers=3, pstn_channel_count=6, phone_workers=2).at(2)
    assert [(w.name, w.sip_address, w.rtp_port) for w in cfg.gateway_pool] == [
        ("Gateway w1", "127.0.2.2:5060", 20000),
        ("Gateway w2", "127.0.2.2:5061", 20100),
        ("Gateway w3", "127.0.2.2:5062", 20200),
    ]
    assert cfg.worker_socket(cfg.gateway_pool[1]) == cfg.run_dir / "gateway-w2.sock"
    # The first phone process is the phone: its control socket and name stay what they were.
    phone, second = cfg.phone_pool
    assert phone == cfg.phone and (second.name, second.sip_address) == ("Mobile phone w2", "127.0.2.5:5061")
    assert [cfg.control_port(p) for p in (phone, second, cfg.phone2)] == [8090, 8091, 8090]
    # PSTN channel i's calls go to phone process i mod 2: 3 calls each at most.
    number = "+79991234567"
    assert [cfg.phone_for(number, ch) for ch in cfg.pstn_channels] == [phone, second] * 3
    assert (
        cfg.phone_for(number) == phone and cfg.phone_for("+79990000002", cfg.pstn_channels[1]) == cfg.phone2
    )
    assert cfg.calls_at_once == 6  # the channels; the gateway would carry 12, the phone 8
    assert dataclasses.replace(cfg, phone_workers=1).calls_at_once == 4


def test_the_pools_default_to_4_calls_a_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cfg = LabConfig()
    assert (cfg.gateway_workers, cfg.pstn_channel_count, cfg.phone_workers, cfg.calls_at_once) == (2, 8, 2, 8)
    assert LabConfig.from_json(cfg.to_json()) == cfg


def test_call_ids_sort_by_time_and_name_their_origin(tmp_path: Path) -> None:
    cfg = dataclasses.replace(LabConfig(), home=tmp_path)
    ids = {new_call_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", i) for i in ids)
    dial_in = new_call_id("dialin-")
    assert dial_in.startswith("dialin-") and call_dir(cfg, dial_in) == tmp_path / "captures" / dial_in


def test_the_phone_number_is_configured_once() -> None:
    cfg = dataclasses.replace(LabConfig(), phone_number="+79990000077")
    assert LabConfig.from_json(cfg.to_json()).phone_number == "+79990000077"
    assert LabConfig().phone_number == "+79990000001"


def test_the_cli_offers_every_browser_codec_the_webrtc_side_has() -> None:
    from lab.config import BROWSER_CODECS
    from lab.webrtc import CODECS

    assert tuple(CODECS) == BROWSER_CODECS
