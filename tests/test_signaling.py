from lab.signaling import CallStatus, status_text


def test_status_text_leaves_out_what_is_unknown() -> None:
    assert status_text(CallStatus.FINISH, 200, "hangup") == "FINISH 200 hangup"
    assert status_text(CallStatus.FAILED, 486, "Busy Here") == "FAILED 486 Busy Here"
    assert status_text("RING", None, "") == "RING"
    assert status_text(CallStatus.FAILED, None, "no answer") == "FAILED no answer"
