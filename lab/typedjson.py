"""JSON messages as frozen dataclasses: one class per message, one codec per protocol.

A protocol (the gateway's signaling, the phone's control socket) names each message by one
key (`type`, `cmd`, `event`); the other keys are the dataclass's fields. Decoding checks
every field's type and raises MessageError naming the message and the field, so both ends
of a protocol agree on one definition and a bad message gets a precise answer.

Wire rules: a field that defaults to None is left out while it is None; every other field
is always sent (None as null). A field whose wire name is a Python keyword says so with
`field(metadata=wire("from"))`. Messages sharing one key value (the gateway's `event`s)
are told apart by their Literal-typed fields.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, Generic, Literal, TypeVar, Union


class MessageError(ValueError):
    """A message that is not one of the protocol's; the text names the field."""


def wire(name: str) -> dict[str, str]:
    """Field metadata: the field's name on the wire, where it differs (a keyword)."""
    return {"wire": name}


M = TypeVar("M")


class Codec(Generic[M]):
    """Encode and decode the messages of one protocol (and direction)."""

    def __init__(self, name: str, key: str, *kinds: type[M]) -> None:
        self.name = name
        self.key = key
        self.kinds: dict[str, list[type[M]]] = {}
        self._hints: dict[type[M], dict[str, Any]] = {}
        for cls in kinds:
            self.kinds.setdefault(cls.KIND, []).append(cls)  # type: ignore[attr-defined]
            self._hints[cls] = typing.get_type_hints(cls)

    def encode(self, msg: M) -> str:
        return json.dumps({self.key: msg.KIND, **self.fields(msg)})  # type: ignore[attr-defined]

    def fields(self, msg: M) -> dict[str, Any]:
        """The message's fields as they go on the wire (without the key naming it)."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(msg):  # type: ignore[arg-type]
            value = getattr(msg, f.name)
            if value is None and f.default is None:
                continue
            data[_wire_name(f)] = _plain(value)
        return data

    def decode(self, text: str | bytes) -> M:
        data = _load(text, self.name)
        kind = data.get(self.key)
        if not isinstance(kind, str):
            raise MessageError(f"{self.name} message has no {self.key!r}")
        candidates = self.kinds.get(kind)
        if not candidates:
            raise MessageError(f"unknown {self.name} message {self.key} {kind[:40]!r}")
        cls = candidates[0] if len(candidates) == 1 else self._pick(kind, candidates, data)
        return self._build(cls, data, kind)

    def _pick(self, kind: str, candidates: list[type[M]], data: dict[str, Any]) -> type[M]:
        """The one message of `kind` whose Literal fields match `data`."""
        tags: list[str] = []
        for cls in candidates:
            hints = self._hints[cls]
            literals = {
                _wire_name(f): typing.get_args(hints[f.name])
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if typing.get_origin(hints[f.name]) is Literal
            }
            if all(data.get(name) in allowed for name, allowed in literals.items()):
                return cls
            tags += [f"{name}={v!r}" for name, allowed in literals.items() for v in allowed]
        raise MessageError(f"{kind}: expected {' or '.join(tags)}")

    def _build(self, cls: type[M], data: dict[str, Any], kind: str) -> M:
        return _from_object(cls, self._hints[cls], data, kind)


def _wire_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("wire", f.name))


def _load(text: str | bytes, name: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except RecursionError:  # json's decoder recurses once per nesting level
        raise MessageError(f"{name} message is nested too deeply") from None
    except ValueError:
        raise MessageError(f"{name} message is not JSON") from None
    if not isinstance(data, dict):
        raise MessageError(f"{name} message is not a JSON object")
    return data


def _from_object(cls: type[M], hints: dict[str, Any], data: dict[str, Any], where: str) -> M:
    """An instance of the dataclass `cls` from a JSON object (unknown keys are ignored)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = _wire_name(f)
        if name in data:
            values[f.name] = _check(data[name], hints[f.name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise MessageError(f"{where}.{name}: missing")
    return cls(**values)


def _plain(value: Any) -> Any:
    """A field's value as json.dumps takes it (nested messages become objects)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_wire_name(f): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}


def _check(value: Any, hint: Any, where: str) -> Any:
    """`value` as the type `hint` says, or MessageError naming `where`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in args:
            try:
                return _check(value, arg, where)
            except MessageError:
                pass
        raise MessageError(f"{where}: expected {' or '.join(_describe(a) for a in args)}, got {_got(value)}")
    if origin is Literal:
        if value not in args:
            raise MessageError(f"{where}: expected one of {', '.join(map(repr, args))}, got {_got(value)}")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise MessageError(f"{where}: expected an object, got {_got(value)}")
        return {str(k): _check(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise MessageError(f"{where}: expected a list, got {_got(value)}")
        return [_check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in hint)
            raise MessageError(f"{where}: expected one of {allowed}, got {_got(value)}") from None
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            raise MessageError(f"{where}: expected an object, got {_got(value)}")
        return _from_object(hint, typing.get_type_hints(hint), value, where)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise MessageError(f"{where}: expected {_describe(hint)}, got {_got(value)}")


def _describe(hint: Any) -> str:
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _got(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value[:40])
    return type(value).__name__ if isinstance(value, dict | list) else repr(value)
