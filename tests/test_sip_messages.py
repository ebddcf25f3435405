from lab.sip.endpoint import parse_headers, request_user

INVITE = (
    "INVITE sip:+79991234567@127.0.0.4:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bK1\r\n"
    "X-Calllab-Call: 20261126-1\r\n"
    "x-calllab-answer:  after:0.5 \r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_request_user_and_headers() -> None:
    assert request_user(INVITE) == "+79991234567"
    headers = parse_headers(INVITE)
    assert headers["x-calllab-call"] == "20261126-1"
    assert headers["x-calllab-answer"] == "after:0.5"
    assert request_user("SIP/2.0 200 OK\r\n\r\n") == ""


def test_frame_bytes_are_read_exactly() -> None:
    import pjsua2 as pj

    from lab.sip.endpoint import vector_bytes

    payload = bytes(range(256)) + b"\x00\xff" * 32
    assert vector_bytes(pj.ByteVector(payload)) == payload
    assert vector_bytes(pj.ByteVector(b"")) == b""
