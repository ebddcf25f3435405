"""A person's view: JupyterLab in headless Chromium, notebook 1 open, log in, Voice call,
ESTABLISHED in the status line, Hangup. The screenshots are kept as test artifacts."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import process
from lab.chromium import CHROMIUM, HEADLESS_ARGS
from lab.config import LabConfig
from lab.stack import start_daemon, stop_daemon

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "captures" / "browser-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def jupyter(lab_config: LabConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is not installed at {CHROMIUM}: the CI setup must install it")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright")
    env = {**os.environ, "CALLLAB_HOME": str(lab_config.home)}
    os.environ["CALLLAB_HOME"] = str(lab_config.home)
    start_daemon(lab_config)
    port, token = free_port(), secrets.token_hex(16)
    notebooks = tmp_path_factory.mktemp("notebooks")  # JupyterLab autosaves: not into the repo
    shutil.copy(ROOT / "notebooks" / "01_first_call.ipynb", notebooks)
    log = lab_config.home / "jupyter.log"
    server = process.spawn(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={notebooks}",
            "--ServerApp.open_browser=False",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        log,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            ["curl", "-sf", f"{url}/api/status?token={token}"], capture_output=True
        ).returncode:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start; {log}:\n{process.tail(log)}")
            time.sleep(0.5)
        yield f"{url}/lab/tree/01_first_call.ipynb?token={token}"
    finally:
        process.stop_group(server.pid)
        stop_daemon(lab_config)


def test_first_call_from_the_phone_widget_in_a_real_browser(jupyter: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=HEADLESS_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(jupyter)
            first_code = page.locator(".jp-CodeCell").first
            expect(first_code).to_be_visible(timeout=60_000)
            # Cells run before the kernel is connected are silently dropped: wait for it.
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
            first_code.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")  # start_lab() and the Phone widget
            login = page.get_by_role("button", name="Log in")
            expect(login).to_be_visible(timeout=60_000)
            login.click()
            status = page.locator(".widget-html-content").filter(has_text="logged in as VKP009")
            expect(status).to_be_visible(timeout=20_000)
            page.get_by_placeholder("Enter your number here").fill("+79991234567")
            page.get_by_role("button", name="Voice call").click()
            expect(page.get_by_text("ESTABLISHED 200 OK")).to_be_visible(timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "established.png"))
            hangup = page.get_by_role("button", name="Hangup")
            expect(hangup).to_be_enabled()
            hangup.click()
            expect(page.get_by_text("FINISH 200 hangup")).to_be_visible(timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "finished.png"))
            assert "password" not in page.locator("input[type=password]").first.input_value()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "failure.png"))
            raise
        finally:
            browser.close()
