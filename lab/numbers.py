"""What the lab accepts as a number to dial: checked before any SIP is sent."""

from __future__ import annotations

import re

MAX_DIGITS = 32
SEPARATORS = " -()."  # left out of a number
_SEPARATORS = str.maketrans("", "", SEPARATORS)
_NUMBER_RE = re.compile(rf"\+?[0-9*#]{{1,{MAX_DIGITS}}}")
#: the rule as data, for the Phone page's JavaScript (the pattern is valid in both languages)
RULE = {"separators": SEPARATORS, "pattern": _NUMBER_RE.pattern, "max_digits": MAX_DIGITS}


class InvalidNumber(ValueError):
    pass


class PhoneNumber(str):
    """A number that has been checked and normalised: made only by normalize_number, so
    code that receives one (LabCall, Session.create_call) never parses it again."""


def normalize_number(text: str) -> PhoneNumber:
    """`+7 (999) 123-45-67` -> `+79991234567`; anything else that is not digits is refused.

    Called where a number enters the lab (the CLI, place_call, the Phone widget, the client
    API, the gateway's WebSocket); a PhoneNumber passes through unchanged."""
    if isinstance(text, PhoneNumber):
        return text
    if not isinstance(text, str):
        raise InvalidNumber(f"number must be text, not {type(text).__name__}")
    number = text.strip(" ").translate(_SEPARATORS)
    if not _NUMBER_RE.fullmatch(number):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise InvalidNumber(
            f"{shown!r} is not a phone number: use digits, * and #, an optional leading +, "
            f"at most {MAX_DIGITS} of them"
        )
    return PhoneNumber(number)
