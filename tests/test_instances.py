"""Several labs on one machine: instance N's addresses, state and captures, and the choice of
the first free instance. Nothing here starts a lab; instances 200 and up keep these tests
clear of any lab that runs on the machine while they do."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from lab.capture import lab_filter
from lab.cli import parser
from lab.config import LabConfig, host_at, lab_of_capture
from lab.sipserver import render_config
from lab.stack import InstanceTaken, LabError, Stack, claim, requested_instance, running_labs, take_instance


def test_instance_0_is_the_lab_as_it_always_was() -> None:
    cfg = LabConfig()
    assert cfg.at(0) == cfg and cfg.instance == 0
    assert {p.host for p in cfg.parties} == {f"127.0.0.{i}" for i in range(1, 11)}
    assert cfg.run_dir == cfg.home / ".calllab" / "run"
    assert cfg.captures_dir == cfg.home / "captures"
    assert cfg.ws_url == "ws://127.0.0.2:8089/"


def test_instance_n_moves_every_address_and_keeps_every_port() -> None:
    base, lab = LabConfig(), LabConfig().at(7)
    assert lab.instance == 7
    assert {p.host for p in lab.parties} == {f"127.0.7.{i}" for i in range(1, 11)}
    for before, after in zip(base.processes, lab.processes, strict=True):
        assert (after.name, after.sip_port, after.rtp_port) == (before.name, before.sip_port, before.rtp_port)
    assert {c.host for c in lab.pstn_channels} == {"127.0.7.4"}
    assert lab.ws_url == "ws://127.0.7.2:8089/"
    assert lab.phone_control_url == "ws://127.0.7.5:8090/"
    assert lab.account().outbound_proxy == "127.0.7.3" and lab.account().domain == "127.0.7.3"
    assert lab.run_dir == base.home / ".calllab" / "run-7"
    assert lab.captures_dir == base.home / "captures-7"
    assert lab.prompts_dir == base.prompts_dir  # the same speech for every lab
    assert lab.at(0) == base  # moving back is moving, not adding
    assert LabConfig.from_json(lab.to_json()) == lab


def test_only_loopback_addresses_move() -> None:
    assert host_at("127.0.0.3", 12) == "127.0.12.3"
    assert host_at("192.0.2.10", 12) == "192.0.2.10"  # a real SIP server stays where it is
    assert host_at("sip.example.com", 12) == "sip.example.com"


@pytest.mark.parametrize("instance", [-1, 256])
def test_an_instance_outside_the_range_is_refused(instance: int) -> None:
    with pytest.raises(ValueError, match="lab instance"):
        LabConfig().at(instance)


def test_kamailio_and_the_capture_of_instance_n_name_only_its_addresses() -> None:
    lab = LabConfig().at(3)
    text = render_config(lab, {"VKP009": "secret"})
    assert 'alias="127.0.3.3"' in text and '$si != "127.0.3.4"' in text
    assert "127.0.3.5:5060" in text and "127.0.3.6:5060" in text
    assert "127.0.0." not in text
    bpf = lab_filter(lab)
    hosts = {word for word in bpf.replace("(", " ").replace(")", " ").split() if word.startswith("127.")}
    assert hosts == {f"127.0.3.{i}" for i in range(1, 11)}


def test_a_capture_is_named_by_the_lab_whose_captures_dir_holds_it(tmp_path: Path) -> None:
    assert lab_of_capture(tmp_path / "captures-4" / "x.pcapng").instance == 4
    assert lab_of_capture(tmp_path / "captures" / "x.pcapng").instance == 0
    assert lab_of_capture(tmp_path / "elsewhere" / "x.pcapng").instance == 0


@pytest.fixture
def no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLLAB_INSTANCE", raising=False)


def test_the_first_free_instance_is_taken_and_held(no_request: None) -> None:
    cfg, held = take_instance(LabConfig().at(200), first_free=True)
    try:
        assert cfg.instance == 200 and cfg.gateway.host == "127.0.200.2"
        with pytest.raises(InstanceTaken, match="instance 200 is taken by another lab"):
            claim(200)  # another lab, of any user, now moves on
        moved, also_held = take_instance(LabConfig().at(200), first_free=True)
        also_held.close()
        assert moved.instance == 201
    finally:
        held.close()
    claim(200).close()  # free again once its holder lets go


def test_an_instance_whose_address_is_in_use_is_skipped(no_request: None) -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.210.3", 5060))  # something else has instance 210's SIP server address
    try:
        cfg, held = take_instance(LabConfig().at(210), first_free=True)
        held.close()
        assert cfg.instance == 211
        with pytest.raises(
            InstanceTaken, match=r"SIP server: address 127\.0\.210\.3:5060/udp is already in use"
        ):
            take_instance(LabConfig().at(210), first_free=False)
    finally:
        squatter.close()


def test_the_instance_asked_for_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLLAB_INSTANCE", "9")
    stack = Stack()
    assert (stack.cfg.instance, stack.first_free) == (9, False)
    monkeypatch.delenv("CALLLAB_INSTANCE")
    stack = Stack()
    assert (stack.cfg.instance, stack.first_free) == (0, True)
    assert Stack(LabConfig().at(5)).first_free is False  # a config names its lab


@pytest.mark.parametrize("text", ["x", "256", "-1", "1.5"])
def test_a_bad_instance_is_refused_in_one_line(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLLAB_INSTANCE", text)
    with pytest.raises(LabError, match=r"CALLLAB_INSTANCE=.*a lab instance, 0 to 255"):
        requested_instance()
    with pytest.raises(SystemExit):
        parser().parse_args(["status", "--instance", text])


def _pretend_running(cfg: LabConfig, owner: int) -> None:
    cfg.save(cfg.run_dir / "lab.json")
    (cfg.run_dir / "stack.json").write_text(
        json.dumps({"owner": owner, "instance": cfg.instance, "parties": {}})
    )


def test_a_user_finds_the_labs_they_started_by_their_home(tmp_path: Path) -> None:
    home = tmp_path
    base = LabConfig(home=home)
    _pretend_running(base.at(3), os.getpid())
    _pretend_running(base.at(1), os.getpid())
    _pretend_running(base.at(2), 2**22 + 1)  # its owner is gone: not running
    assert [c.instance for c in running_labs(home)] == [1, 3]
    assert not (base.at(2).run_dir / "stack.json").exists()  # the stale state is cleared
    assert running_labs(home / "another-user") == []
