"""The browser-style client, shaped after the seed's WebSDK."""

from lab.client.session import Call, LoginFailed, Session, StatusEvent
from lab.numbers import InvalidNumber
from lab.signaling import CallStatus

CALL_STATUS = CallStatus

__all__ = ["CALL_STATUS", "Call", "CallStatus", "InvalidNumber", "LoginFailed", "Session", "StatusEvent"]
