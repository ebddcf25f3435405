from lab.sip.message import header_params, parse_sip, split_stream, uri_of, user_of

INVITE = (
    "INVITE sip:+79991234567@127.0.0.4:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.3;branch=z9hG4bK1\r\n"
    "X-Calllab-Call: 20261126-1\r\n"
    "x-calllab-answer:  after:0.5 \r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_request_user_and_headers() -> None:
    msg = parse_sip(INVITE)
    assert msg is not None and msg.request_user == "+79991234567"
    assert msg.headers["x-calllab-call"] == "20261126-1"
    assert msg.headers["x-calllab-answer"] == "after:0.5"
    ok = parse_sip("SIP/2.0 200 OK\r\n\r\n")
    assert ok is not None and ok.request_user == "" and ok.status == 200 and ok.reason == "OK"


def test_compact_forms_folding_and_first_occurrence() -> None:
    # What a foreign client may send (RFC 4475 3.1.1.1 style): compact names, folded lines,
    # odd spacing, repeated headers, LF line ends.
    msg = parse_sip(
        "BYE sip:bob@example.com SIP/2.0\n"
        "v: SIP/2.0/TCP host1;branch=z9hG4bK-top,\n"
        " SIP/2.0/UDP host2;branch=z9hG4bK-second\n"
        "Via: SIP/2.0/UDP host3;branch=z9hG4bK-third\n"
        "f: Alice\n"
        "\t<sip:alice@example.com> ;tag = a1\n"
        "t:<sip:bob@example.com>;tag=b2\n"
        "i : call-9\n"
        "CSeq: 7 BYE\n"
        "k: replaces\n"
        "broken line without colon\n"
        " continues nothing\n"
        'Reason: Q.850;cause=16;text="Normal; \\"clearing\\""\n'
        "l: 0\n\n"
    )
    assert msg is not None and msg.method == "BYE" and msg.is_request
    assert msg.headers["via"] == (
        "SIP/2.0/TCP host1;branch=z9hG4bK-top, SIP/2.0/UDP host2;branch=z9hG4bK-second"
    )
    assert msg.branch == "z9hG4bK-top"
    assert msg.headers["from"] == "Alice <sip:alice@example.com> ;tag = a1"
    assert (msg.tag("from"), msg.tag("to")) == ("a1", "b2")
    assert msg.headers["call-id"] == "call-9" and msg.headers["supported"] == "replaces"
    assert msg.headers["content-length"] == "0"
    assert header_params(msg.headers["reason"]) == {"cause": "16", "text": 'Normal; "clearing"'}
    assert "broken line without colon" not in msg.headers


def test_header_params_ignore_what_is_quoted_or_inside_the_uri() -> None:
    value = '"A;tag=no, really" <sip:a@b;tag=uri;lr>;tag=x1;rport, <sip:c@d>;tag=second'
    assert header_params(value) == {"tag": "x1", "rport": ""}
    assert uri_of(value) == "sip:a@b;tag=uri;lr"
    assert uri_of("sip:+7999@host;tag=1") == "sip:+7999@host"
    assert user_of('"Alice" <sip:VKP009@127.0.0.3>;tag=x') == "VKP009"
    assert user_of('"<sip:fake@x>" <sips:+79990000001@h>') == "+79990000001"
    assert user_of("<tel:+7999>") == user_of("<sip:a'b@h>") == user_of("<sip:host>") == ""


def test_responses_and_not_sip() -> None:
    ringing = parse_sip(b"SIP/2.0 180 Ringing\r\ni: x\r\nCSeq: 1 INVITE\r\n\r\n")
    assert ringing is not None
    assert (ringing.status, ringing.method, ringing.is_request) == (180, "INVITE", False)
    odd = parse_sip(b"SIP/2.0 " + b"9" * 5000 + b" Big\r\n\r\n")
    assert odd is not None and odd.status is None  # not a number anyone can use; no exception
    assert parse_sip(b"GET / HTTP/1.1\r\n\r\n") is None
    assert parse_sip(b"FOO sip:a@b SIP/2.0\r\n\r\n") is None


def test_stream_framing_by_content_length() -> None:
    first = b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhello"
    second = b"SIP/2.0 200 OK\r\nContent-Length:   0\r\n\r\n"
    cut = b"NOTIFY sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nshort"
    stream = b"\r\n\r\n" + first + second + b"\r\n" + cut
    assert split_stream(stream) == [(4, first), (4 + len(first), second)]
    huge = b"INFO sip:a@b SIP/2.0\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n"
    assert split_stream(huge) == [(0, huge)]  # an unusable length is no length


def test_frame_bytes_are_read_exactly() -> None:
    import pjsua2 as pj

    from lab.sip.endpoint import vector_bytes

    payload = bytes(range(256)) + b"\x00\xff" * 32
    assert vector_bytes(pj.ByteVector(payload)) == payload
    assert vector_bytes(pj.ByteVector(b"")) == b""
