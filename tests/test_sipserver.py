import subprocess
from pathlib import Path

import pytest

from lab import sipserver
from lab.config import LabConfig


def test_renders_users_and_routes(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path, pstn_channel_count=4)
    text = sipserver.render_config(cfg, {"VKP009": "s3cret-pw"})
    assert '$au == "VKP009"' in text and '"s3cret-pw"' in text
    assert "@@" not in text
    assert '$ru = "sip:" + $rU + "@127.0.0.4:" + $var(port);' in text
    assert "$var(port) = 5060 + $avp(channel);" in text and "$avp(channel) < 4" in text


def test_refuses_users_that_would_break_the_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quotes"):
        sipserver.render_config(LabConfig(home=tmp_path), {"a": 'x"; exit; "'})


def test_kamailio_accepts_the_config(tmp_path: Path) -> None:
    cfg = LabConfig(home=tmp_path)
    path = tmp_path / "kamailio.cfg"
    path.write_text(sipserver.render_config(cfg, {"VKP009": "pw"}))
    argv = sipserver.command(cfg, path) + ["-c"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
