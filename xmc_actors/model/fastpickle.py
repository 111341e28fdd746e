"""Compact pickling for the frozen models that cross Ray calls on the order path.

Ray serialises call arguments and results with cloudpickle, whose per-object hook makes every
``Enum`` member and ``Decimal`` cost several microseconds; an ``OrderRequest`` took ~36 us to
pickle and a two-report ``place`` answer ~58 us on the reference machine. :func:`fast_pickle`
gives a model a ``__reduce__`` that writes its field values as a flat tuple with enum members
as their values and decimals as strings, and rebuilds it from them without re-validation, as
plain pickling of a pydantic model already does. Round trips are exact (``==``, same
``model_fields_set``, ``Decimal`` exponent kept).
"""
from __future__ import annotations

import types
import typing
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

import msgpack
from pydantic import BaseModel

_new = object.__new__
_set = object.__setattr__

_ENUM, _DEC = 1, 2
#: class -> (field names, per-field codec (None | (_ENUM, enum class) | (_DEC, None)))
_LAYOUTS: dict[type, tuple[tuple[str, ...], tuple[Any, ...]]] = {}


def _codec(annotation: Any) -> Any:
    """How a field of this annotation is written: enum by value, Decimal as str, else as is."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,)
    kinds = set()
    for a in args:
        if a is type(None):
            continue
        if typing.get_origin(a) is typing.Annotated:
            a = typing.get_args(a)[0]
        if isinstance(a, type) and issubclass(a, Enum):
            kinds.add((_ENUM, a))
        elif a is Decimal:
            kinds.add((_DEC, None))
        else:
            kinds.add(None)
    return kinds.pop() if len(kinds) == 1 else None


def _rebuild(cls: type, values: tuple[Any, ...], fields_set: int) -> Any:
    names, codecs = _LAYOUTS[cls]
    d = {}
    for name, codec, v in zip(names, codecs, values):
        if codec is not None and type(v) is str:
            if codec[0] == _ENUM:
                try:
                    v = codec[1](v)
                except ValueError:
                    pass  # written as it was (not a member): keep it
            else:
                try:
                    v = Decimal(v)
                except InvalidOperation:
                    pass
        d[name] = v
    obj = _new(cls)
    _set(obj, "__dict__", d)
    _set(obj, "__pydantic_fields_set__", {n for i, n in enumerate(names) if fields_set >> i & 1})
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def _reduce(self: BaseModel) -> tuple[Any, ...]:
    cls = type(self)
    names, codecs = _LAYOUTS[cls]
    d = self.__dict__
    values = []
    for name, codec in zip(names, codecs):
        v = d[name]
        if codec is not None:
            if codec[0] == _ENUM:
                if isinstance(v, codec[1]):
                    v = v.value
            elif type(v) is Decimal:
                v = str(v)
        values.append(v)
    fs = self.__pydantic_fields_set__
    mask = 0
    for i, n in enumerate(names):
        if n in fs:
            mask |= 1 << i
    return _rebuild, (cls, tuple(values), mask)


_WIRE_EXT = 42
_BY_NAME: dict[str, type] = {}


class _WireError(ValueError):
    """Bytes that are not what :func:`to_wire` writes (raised with the reason)."""


def _wire_default(obj: Any) -> Any:
    cls = type(obj)
    if cls in _LAYOUTS:
        _, (_, values, mask) = _reduce(obj)
        return msgpack.ExtType(_WIRE_EXT, msgpack.packb((cls.__name__, values, mask), default=_wire_default,
                                                        use_bin_type=True))
    if cls is Decimal:
        return str(obj)
    raise TypeError(f"to_wire: cannot encode a {cls.__name__}")


def _wire_ext(code: int, data: bytes) -> Any:
    if code != _WIRE_EXT:
        raise _WireError(f"from_wire: unknown extension type {code}")
    name, values, mask = msgpack.unpackb(data, ext_hook=_wire_ext, raw=False, use_list=False)
    cls = _BY_NAME.get(name)
    if cls is None:
        raise _WireError(f"from_wire: {name!r} is not a wire model")
    if not isinstance(values, tuple) or len(values) != len(_LAYOUTS[cls][0]) or not isinstance(mask, int):
        raise _WireError(f"from_wire: {name}: expected {len(_LAYOUTS[cls][0])} field values")
    return _rebuild(cls, values, mask)


def to_wire(obj: Any) -> bytes:
    """``obj`` (a fast-pickled model, or lists / tuples / dicts of them and plain values) as
    msgpack bytes. Ray passes ``bytes`` on its msgpack path, without pickling; on the order path
    (an :class:`OrderRequest` in, the reports out) that halves the serialisation cost of a call.
    Exact round trip through :func:`from_wire`; tuples come back as tuples, lists as tuples."""
    return msgpack.packb(obj, default=_wire_default, use_bin_type=True)


def from_wire(data: bytes) -> Any:
    """The value :func:`to_wire` encoded; ``ValueError`` naming what is wrong otherwise."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _WireError(f"from_wire: expected bytes, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, ext_hook=_wire_ext, raw=False, use_list=False)
    except _WireError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack's own errors: truncated, garbage
        raise _WireError(f"from_wire: undecodable ({type(e).__name__}: {e})") from None


def fast_pickle(*classes: type[BaseModel]) -> None:
    """Give each (frozen, extra-forbidding, private-less) model the compact ``__reduce__``
    (and make it a wire model: :func:`to_wire` / :func:`from_wire`)."""
    for cls in classes:
        if _BY_NAME.get(cls.__name__, cls) is not cls:
            raise TypeError(f"fast_pickle: two wire models named {cls.__name__}")
        _BY_NAME[cls.__name__] = cls
        if cls.model_config.get("extra") == "allow" or cls.__private_attributes__:
            raise TypeError(f"fast_pickle: {cls.__name__} has extra fields or private attributes")
        names = tuple(cls.model_fields)
        _LAYOUTS[cls] = (names, tuple(_codec(f.annotation) for f in cls.model_fields.values()))
        for codec in _LAYOUTS[cls][1]:
            if codec is not None and codec[0] == _ENUM and not all(isinstance(m.value, str) for m in codec[1]):
                raise TypeError(f"fast_pickle: {cls.__name__}: enum {codec[1].__name__} has non-str values")
        cls.__reduce__ = _reduce  # type: ignore[method-assign,assignment]
