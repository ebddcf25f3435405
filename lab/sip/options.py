"""SIP OPTIONS ping: how the lab knows a SIP party is up and answering."""

from __future__ import annotations

import asyncio
import secrets
import socket


def options_request(host: str, port: int, local: tuple[str, int]) -> bytes:
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:health@{local[0]}>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@calllab\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


async def options_ping(host: str, port: int, timeout: float = 0.5, *, source: str) -> int:
    """Status code of the answer to one OPTIONS sent from `source` (a lab address: unbound,
    Linux would send from 127.0.0.1, lab 0's browser, into another lab's capture); raises
    TimeoutError when nothing answers."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        await loop.sock_sendto(sock, options_request(host, port, sock.getsockname()), (host, port))
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 65535)
                first = data.split(b"\r\n", 1)[0].decode(errors="replace")
                parts = first.split(" ", 2)
                if len(parts) >= 2 and parts[0] == "SIP/2.0" and parts[1].isdigit():
                    code = int(parts[1])
                    if code >= 200:
                        return code
    except ConnectionRefusedError:
        raise TimeoutError(f"nothing listens on {host}:{port}") from None
    finally:
        sock.close()
