"""The Phone page (lab/phonepage/), served by the gateway's WebSocket server on its own port:
a plain HTTP GET gets the files, an upgrade the signaling, so the page and its WebSocket share
one origin (and http://127.0.0.x is a secure origin, where a browser grants the microphone)."""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from lab.config import LabConfig
from lab.numbers import RULE

PAGE_DIR = Path(__file__).resolve().parents[1] / "phonepage"
PATH = "/phone"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def url(cfg: LabConfig) -> str:
    return f"http://{cfg.gateway.host}:{cfg.ws_port}{PATH}/"


def lab_json(cfg: LabConfig) -> bytes:
    """What the page needs from the lab: the login form's defaults (never the password), the
    audio rate it records at, and the number rule of lab.numbers."""
    account = cfg.account()
    fields = ("login", "auth_name", "domain", "outbound_proxy", "port")
    defaults = {name: getattr(account, name) for name in fields}
    return json.dumps({"account": defaults, "audio_rate": cfg.audio_rate, "numbers": RULE}).encode()


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    )
    return Response(status.value, status.phrase, headers, body)


def responder(cfg: LabConfig) -> Callable[[ServerConnection, Request], Response | None]:
    """The server's process_request: the page's files for a GET without an upgrade."""
    generated = {"lab.json": (lab_json(cfg), "application/json")}

    def respond(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        path = request.path.split("?", 1)[0]
        if path == PATH:
            return Response(
                HTTPStatus.FOUND.value, "Found", Headers([("Location", f"{PATH}/"), ("Content-Length", "0")])
            )
        if not path.startswith(f"{PATH}/"):
            return _response(
                HTTPStatus.NOT_FOUND, f"no page at {path}; the Phone is at {PATH}/".encode(), "text/plain"
            )
        name = path.removeprefix(f"{PATH}/") or "index.html"
        if name in generated:
            body, content_type = generated[name]
            return _response(HTTPStatus.OK, body, content_type)
        file = PAGE_DIR / name
        # Only the page's own files: no directories, no way out of PAGE_DIR.
        if "/" in name or not file.is_file() or file.suffix not in _TYPES:
            return _response(HTTPStatus.NOT_FOUND, f"no file {name} in the Phone page".encode(), "text/plain")
        return _response(HTTPStatus.OK, file.read_bytes(), _TYPES[file.suffix])

    return respond
