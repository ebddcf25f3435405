"""SIP OPTIONS ping: how the lab knows a SIP party is up and answering; and any request sent
over UDP the way a foreign client would, for the tests that probe the parties."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import Callable


def options_request(host: str, port: int, local: tuple[str, int]) -> bytes:
    return request("OPTIONS", host, port, local)


def request(method: str, host: str, port: int, local: tuple[str, int], extra: str = "") -> bytes:
    """An out-of-dialog request with a fresh branch, tag and Call-ID; `extra` is more header
    lines, each ending in CRLF."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    return (
        f"{method} sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:health@{local[0]}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@calllab\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def exchange(
    host: str,
    port: int,
    build: Callable[[tuple[str, int]], bytes] | None = None,
    timeout: float = 0.5,
    *,
    source: str,
) -> bytes:
    """Send one datagram from a fresh UDP port on `source` (a lab address: unbound, Linux
    would send from 127.0.0.1, lab 0's browser, into another lab's capture) and return the first final
    response (status 200-699) to it. `build` makes the datagram from that port's address
    (responses go where the Via says); None sends an OPTIONS. TimeoutError when no final
    response comes within `timeout`."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        local = sock.getsockname()
        data = options_request(host, port, local) if build is None else build(local)
        await loop.sock_sendto(sock, data, (host, port))
        async with asyncio.timeout(timeout):
            while True:
                answer = await loop.sock_recv(sock, 65535)
                parts = answer.split(b"\r\n", 1)[0].decode(errors="replace").split(" ", 2)
                if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit() and int(parts[1]) >= 200:
                    return answer
    except TimeoutError:
        raise TimeoutError(f"no final response from {host}:{port} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise TimeoutError(f"nothing listens on {host}:{port}") from None
    finally:
        sock.close()


async def options_ping(host: str, port: int, timeout: float = 0.5, *, source: str) -> int:
    """Status code of the answer to one OPTIONS sent from `source`; raises TimeoutError when
    nothing answers."""
    answer = await exchange(host, port, timeout=timeout, source=source)
    return int(answer.split(b" ", 2)[1])
