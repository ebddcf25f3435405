import pytest

from lab.numbers import MAX_DIGITS, InvalidNumber, normalize_number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("+79991234567", "+79991234567"),
        ("89991234567", "89991234567"),
        ("+7 (999) 123-45-67", "+79991234567"),
        ("*100#", "*100#"),
    ],
)
def test_accepts_phone_numbers(text: str, number: str) -> None:
    assert normalize_number(text) == number


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "123@evil.example;transport=tcp",
        "sip:123@127.0.0.3",
        "123\r\nVia: x",
        "123\n",
        "+" + "1" * (MAX_DIGITS + 1),
        "++7999",
        "7999 1234 x",
    ],
)
def test_refuses_anything_else_with_a_message(text: str) -> None:
    with pytest.raises(InvalidNumber, match="is not a phone number"):
        normalize_number(text)
