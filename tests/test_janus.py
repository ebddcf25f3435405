"""Janus as the lab's peer (lab/janus.py, bench/peers.py): its config keeps it on one
loopback address and loads only what the bench uses; the shim shows it that address only;
the SIP plugin's events are read as Janus sends them. No Janus needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab import janus
from lab.janus import JanusConfig, config_files, write_config
from lab.sip.videophone import build_preload

HOST = "127.0.0.20"


def settings(text: str) -> dict[str, str]:
    """key = value lines of a .jcfg, values as written (JSON strings keep their quotes)."""
    return dict(re.findall(r"^\t(\w+) = (.+)$", text, re.MULTILINE))


def test_janus_listens_on_its_loopback_address_and_a_unix_socket_only(tmp_path: Path) -> None:
    cfg = JanusConfig(tmp_path / "api.sock", HOST)
    files = config_files(cfg, tmp_path)
    assert sorted(files) == ["janus.jcfg", "janus.plugin.sip.jcfg", "janus.transport.websockets.jcfg"]
    sip = settings(files["janus.plugin.sip.jcfg"])
    assert {sip[k] for k in ("local_ip", "local_media_ip", "sdp_ip")} == {f'"{HOST}"'}
    assert sip["keepalive_interval"] == "0"
    core = settings(files["janus.jcfg"])
    assert core["ice_enforce_list"] == f'"{HOST}"'
    assert core["ipv6"] == "false"
    assert core["plugins_folder"] == f'"{tmp_path / "plugins"}"'
    ws = settings(files["janus.transport.websockets.jcfg"])
    assert ws["ws_unix"] == f'"{tmp_path / "api.sock"}"'
    assert "ws_port" not in ws and "ws_ip" not in ws  # no TCP listener at all
    assert ws["wss"] == ws["admin_ws"] == ws["admin_wss"] == "false"


def test_only_a_loopback_host_is_taken(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        JanusConfig(tmp_path / "api.sock", "192.0.2.2")


def test_the_config_dir_loads_the_sip_plugin_and_the_websocket_transport_only(tmp_path: Path) -> None:
    libraries = tmp_path / "lib"
    for sub, names in {
        "plugins": ["libjanus_sip.so", "libjanus_echotest.so", "libjanus_videoroom.so"],
        "transports": ["libjanus_websockets.so", "libjanus_http.so", "libjanus_pfunix.so"],
        "events": ["libjanus_sampleevh.so"],
        "loggers": ["libjanus_jsonlog.so"],
    }.items():
        (libraries / sub).mkdir(parents=True)
        for name in names:
            (libraries / sub / name).write_bytes(b"")
    folder = tmp_path / "janus"
    folder.mkdir()
    (folder / "stale.jcfg").write_text("left from an earlier run")
    main = write_config(JanusConfig(folder / "api.sock", HOST), folder, libraries)
    assert main == folder / "janus.jcfg"
    loaded = {sub: sorted(p.name for p in (folder / sub).iterdir()) for sub in janus.LIBRARY_FOLDERS}
    assert loaded == {
        "plugins": ["libjanus_sip.so"],
        "transports": ["libjanus_websockets.so"],
        "events": [],
        "loggers": [],
    }
    assert (folder / "plugins" / "libjanus_sip.so").resolve() == libraries / "plugins" / "libjanus_sip.so"
    assert not (folder / "stale.jcfg").exists()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_shim_shows_janus_one_interface_holding_its_address(tmp_path: Path) -> None:
    shim = build_preload(janus.SHIM_SOURCE, tmp_path / "ifaddrshim.so", "test")
    assert shim is not None
    code = textwrap.dedent(
        """
        import ctypes, socket
        class Addr(ctypes.Structure):
            _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_ushort), ("addr", ctypes.c_ubyte * 4)]
        class Ifa(ctypes.Structure):
            pass
        Ifa._fields_ = [
            ("next", ctypes.POINTER(Ifa)),
            ("name", ctypes.c_char_p),
            ("flags", ctypes.c_uint),
            ("addr", ctypes.POINTER(Addr)),
        ]
        libc = ctypes.CDLL(None)
        head = ctypes.POINTER(Ifa)()
        assert libc.getifaddrs(ctypes.byref(head)) == 0
        node = head
        while node:
            a = node.contents.addr.contents
            if a.family == socket.AF_INET:
                loopback = node.contents.flags & 0x8
                print(node.contents.name.decode(), loopback, socket.inet_ntoa(bytes(a.addr)))
            node = node.contents.next
        libc.freeifaddrs(head)
        """
    )

    def interfaces(env: dict[str, str]) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.splitlines()

    assert interfaces({"LD_PRELOAD": str(shim), "CALLLAB_IFADDR": HOST}) == [f"calllab 0 {HOST}"]
    # Without the address to show, the machine's own list (lo is a loopback interface: flag 8).
    assert "lo 8 127.0.0.1" in interfaces({"LD_PRELOAD": str(shim)})


def test_a_sip_plugin_event_is_read_with_its_sdp() -> None:
    msg = {
        "janus": "event",
        "session_id": 1,
        "sender": 2,
        "transaction": "t0",
        "plugindata": {
            "plugin": "janus.plugin.sip",
            "data": {
                "sip": "event",
                "call_id": "abc",
                "result": {"event": "accepted", "username": "sip:x@y"},
            },
        },
        "jsep": {"type": "answer", "sdp": "v=0\r\n"},
    }
    event = janus._sip_event(msg)
    assert (event.event, event.sdp, event.data["call_id"], event.data["username"]) == (
        "accepted",
        "v=0\r\n",
        "abc",
        "sip:x@y",
    )
    refused = janus._sip_event(
        {
            "janus": "event",
            "plugindata": {"data": {"sip": "event", "error_code": 440, "error": "Wrong state"}},
        }
    )
    assert refused.event == "error" and refused.data["error_code"] == 440 and refused.sdp is None
