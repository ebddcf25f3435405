"""The SIP server party: Kamailio, run as a foreground child with a config the lab renders."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

from lab.config import LabConfig

TEMPLATE = Path(__file__).with_name("kamailio.cfg")
APT_PACKAGE = "kamailio"


def _kamailio_string(text: str) -> str:
    if any(c in text for c in '"\\\r\n'):
        raise ValueError("SIP server users: quotes, backslashes and line breaks are not allowed")
    return text


def render_config(cfg: LabConfig, users: dict[str, str]) -> str:
    """Kamailio's config for this lab; `users` maps auth names to passwords."""
    user_lines = "\n".join(
        f'\tif ($au == "{_kamailio_string(name)}") {{ $var(password) = "{_kamailio_string(pw)}"; }}'
        for name, pw in users.items()
    )
    replacements = {
        "@@DOMAIN@@": cfg.sipserver.host,
        "@@PSTN_HOST@@": cfg.pstn.host,
        "@@PSTN_PORT@@": str(cfg.pstn.sip_port),
        "@@PSTN_CHANNELS@@": str(cfg.pstn_channel_count),
        "@@MOBILE_RE@@": _kamailio_string(cfg.mobile_number_re),
        "@@PHONE2_RE@@": "^(" + "|".join(n.replace("+", "[+]") for n in cfg.phone2_numbers) + ")$",
        "@@PHONE_ADDRESS@@": cfg.phone.sip_address,
        "@@PHONE2_ADDRESS@@": cfg.phone2.sip_address,
        "@@VIDEOPHONE_NUMBER@@": _kamailio_string(cfg.videophone_number),
        "@@USERS@@": user_lines,
    }
    text = TEMPLATE.read_text()
    for key, value in replacements.items():
        text = text.replace(key, value)
    return text


def find_binary() -> str | None:
    return shutil.which("kamailio") or ("/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)


def module_dir() -> str:
    found = sorted(glob.glob("/usr/lib/*/kamailio/modules")) + sorted(glob.glob("/usr/lib/kamailio/modules"))
    if not found:
        raise FileNotFoundError("Kamailio's modules directory (is the kamailio package installed?)")
    return found[0]


def command(cfg: LabConfig, config_path: Path) -> list[str]:
    binary = find_binary()
    if binary is None:
        raise FileNotFoundError("kamailio")
    runtime = cfg.run_dir / "kamailio"
    runtime.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        "-f",
        str(config_path),
        "-L",
        module_dir(),
        "-Y",
        str(runtime),
        "-P",
        str(runtime / "kamailio.pid"),
        "-l",
        f"udp:{cfg.sipserver.sip_address}",
        "-DD",  # no daemonising: the lab owns the process
        "-E",  # log to stderr, which the lab sends to .calllab/run/sip-server.log
        "-m",
        "64",
        "-M",
        "8",
    ]
