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

import operator
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
#: class -> what the hot paths need, worked out once: the field values in order
#: (``itemgetter``), the enum fields ``(index, name, value -> member)``, the decimal fields
#: ``(index, name)``, each field's bit in the fields-set mask, and the masks already seen
_PLANS: dict[type, tuple[Any, tuple[tuple[int, str, Any], ...], tuple[tuple[int, str], ...], dict[str, int],
                         dict[int, frozenset[str]]]] = {}


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


def _plan(cls: type) -> None:
    names, codecs = _LAYOUTS[cls]
    getter = operator.itemgetter(*names) if len(names) > 1 else (lambda d, _n=names[0]: (d[_n],))
    enums = tuple((i, n, c[1]) for i, (n, c) in enumerate(zip(names, codecs)) if c is not None and c[0] == _ENUM)
    decs = tuple((i, n) for i, (n, c) in enumerate(zip(names, codecs)) if c is not None and c[0] == _DEC)
    _PLANS[cls] = (getter, enums, decs, {n: 1 << i for i, n in enumerate(names)}, {})


def _rebuild(cls: type, values: tuple[Any, ...], fields_set: int) -> Any:
    names = _LAYOUTS[cls][0]
    _, enums, decs, _, sets = _PLANS[cls]
    d = dict(zip(names, values))
    for i, name, enum_cls in enums:
        v = values[i]
        if type(v) is str:
            member = enum_cls._value2member_map_.get(v)
            if member is not None:
                d[name] = member  # not a member: written as it was, kept
    for i, name in decs:
        v = values[i]
        if type(v) is str:
            try:
                d[name] = Decimal(v)
            except InvalidOperation:
                pass
    fs = sets.get(fields_set)
    if fs is None:
        fs = sets[fields_set] = frozenset(n for i, n in enumerate(names) if fields_set >> i & 1)
    obj = _new(cls)
    _set(obj, "__dict__", d)
    _set(obj, "__pydantic_fields_set__", set(fs))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def _reduce(self: BaseModel) -> tuple[Any, ...]:
    cls = type(self)
    getter, enums, decs, bits, _ = _PLANS[cls]
    values = list(getter(self.__dict__))
    for i, _, enum_cls in enums:
        v = values[i]
        if isinstance(v, enum_cls):
            values[i] = v._value_
    for i, _ in decs:
        v = values[i]
        if type(v) is Decimal:
            values[i] = str(v)
    mask = 0
    for n in self.__pydantic_fields_set__:
        mask |= bits.get(n, 0)
    return _rebuild, (cls, tuple(values), mask)


def replace(model: Any, **changes: Any) -> Any:
    """A copy of a frozen fast-pickled model with ``changes`` (trusted values, not validated),
    as ``model.model_copy(update=changes)`` makes it, in a fraction of the time (hot paths)."""
    obj = _new(type(model))
    d = dict(model.__dict__)
    d.update(changes)
    _set(obj, "__dict__", d)
    _set(obj, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys())
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_WIRE_EXT = 42
# msgpack's packer starts with a 256 KiB buffer, and every model nests one packer: allocating
# them cost 4x the encoding itself (a two-report place answer: 65 -> 18 us); it grows as needed
_BUF = 1024
_BY_NAME: dict[str, type] = {}


class _WireError(ValueError):
    """Bytes that are not what :func:`to_wire` writes (raised with the reason)."""


def _wire_default(obj: Any) -> Any:
    cls = type(obj)
    if cls in _LAYOUTS:
        _, (_, values, mask) = _reduce(obj)
        return msgpack.ExtType(_WIRE_EXT, msgpack.packb((cls.__name__, values, mask), default=_wire_default,
                                                        use_bin_type=True, buf_size=_BUF))
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
    return msgpack.packb(obj, default=_wire_default, use_bin_type=True, buf_size=_BUF)


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
        _plan(cls)
        cls.__reduce__ = _reduce  # type: ignore[method-assign,assignment]
