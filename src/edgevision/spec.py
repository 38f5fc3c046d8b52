"""The spec language's base: frozen, typed, plain-data dataclasses with JSON round trip.

Every block kind, the stage and the network are subclasses of :class:`Spec`. A spec holds
plain data only (ints, floats, bools, strings, tuples and other specs), so it is hashable,
compares by value and survives ``to_json``/``from_json`` unchanged. Each concrete spec names
itself with a class attribute ``kind``; that name is written into JSON so that a tuple of
mixed block kinds can be read back.

Validation lives in ``validate()`` (called from ``__post_init__`` after a field-type check)
and raises ``ValueError`` that names the class, the field, the value and what is allowed::

    ValueError: InvertedResidualSpec.stride must be 1 or 2, got 3
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, ClassVar, Iterable

__all__ = ["OMIT_DEFAULT", "Spec", "spec_kinds", "check", "check_choice", "check_positive", "check_stride"]

#: field metadata key: ``field(default=..., metadata={OMIT_DEFAULT: True})`` leaves the field out of
#: ``to_dict`` while it holds its default, so adding such a field changes no existing JSON
OMIT_DEFAULT = "edgevision.omit_default"

_KINDS: dict[str, type["Spec"]] = {}


def spec_kinds() -> dict[str, type["Spec"]]:
    """All registered spec kinds, by their JSON ``kind`` name."""
    return dict(_KINDS)


class Spec:
    """Base class of every spec. Subclasses are ``@dataclass(frozen=True, kw_only=True)``."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind:
            if kind in _KINDS and _KINDS[kind].__qualname__ != cls.__qualname__:
                raise TypeError(f"spec kind {kind!r} is registered twice ({_KINDS[kind].__qualname__}, {cls.__qualname__})")
            _KINDS[kind] = cls

    def __post_init__(self) -> None:
        _check_field_types(self)
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for impossible values. Subclasses extend."""

    # ---- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.metadata.get(OMIT_DEFAULT) and value == field.default:
                continue  # a field added later: JSON (and latency-table keys) of older specs stay byte-identical
            out[field.name] = _encode(value)
        return out

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Spec":
        if not isinstance(data, dict) or "kind" not in data:
            raise ValueError(f"{cls.__name__}.from_dict needs a mapping with a 'kind' key, got {type(data).__name__}")
        kind = data["kind"]
        target = _KINDS.get(kind)
        if target is None:
            raise ValueError(f"unknown spec kind {kind!r}; known kinds: {', '.join(sorted(_KINDS))}")
        if not issubclass(target, cls):
            raise ValueError(f"{cls.__name__}.from_dict got kind {kind!r}, which is a {target.__name__}")
        names = {f.name for f in dataclasses.fields(target)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names - {"kind"})
        if unknown:
            raise ValueError(f"{target.__name__} has no field(s) {', '.join(unknown)}; fields are: {', '.join(sorted(names))}")
        return target(**{key: _decode(value) for key, value in data.items() if key != "kind"})

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        try:
            return cls.from_dict(json.loads(text))
        except RecursionError:  # a crafted file nested thousands of levels deep
            raise ValueError(f"{cls.__name__} JSON is nested too deeply to be a network spec; it is damaged or crafted") from None

    def replace(self, **changes: Any) -> "Spec":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _encode(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "kind" in value:
        return Spec.from_dict(value)
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    return value


# ---- field type check ----------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(v, args[0]) for v in value)
        return len(args) == len(value) and all(_type_ok(v, a) for v, a in zip(value, args))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if origin is tuple:
        return "tuple[" + ", ".join("..." if arg is Ellipsis else _type_name(arg) for arg in args) + "]"
    if hint is type(None):
        return "None"
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _check_field_types(spec: Spec) -> None:
    hints = _hints(type(spec))
    for field in dataclasses.fields(spec):  # type: ignore[arg-type]
        value = getattr(spec, field.name)
        hint = hints[field.name]
        if isinstance(value, list):  # lists are accepted and frozen into tuples
            value = tuple(value)
            object.__setattr__(spec, field.name, value)
        if not _type_ok(value, hint):
            raise ValueError(
                f"{type(spec).__name__}.{field.name} must be of type {_type_name(hint)}, got {value!r} ({type(value).__name__})"
            )
        _check_bounds(spec, field.name, value)


# ---- size bounds: a spec (maybe read from a crafted file) must not ask for absurd sizes -------------
#: (what the field name contains, largest allowed value, why): the first match decides. The limits are
#: far above any published network (widest zoo layer: 4096 channels; most branches: MobileOne's 4;
#: largest ratio: 8) and far below what would overflow, hang a Python loop or exhaust memory.
SIZE_BOUNDS: tuple[tuple[str, float, str], ...] = (
    ("num_classes", 1_000_000, "classes"),
    ("channels", 65_536, "channels"),
    ("width", 65_536, "a width"),
    ("dim", 65_536, "a width"),
    ("multiplier", 64.0, "a width multiplier"),
    ("ratio", 64.0, "a ratio"),
    ("input_size", 65_536, "pixels"),
    ("kernel", 1_024, "a kernel size"),
    ("num_", 1_024, "a count"),
    ("heads", 1_024, "a count"),
    ("groups", 65_536, "groups"),
    ("depth", 1_024, "a count"),
    ("", 2**31 - 1, "a size"),
)


def _check_bounds(spec: Spec, name: str, value: Any) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"{type(spec).__name__}.{name} must be a finite number, got {item!r}")
        limit, what = next((limit, what) for key, limit, what in SIZE_BOUNDS if key in name)
        if abs(item) > limit:
            raise ValueError(f"{type(spec).__name__}.{name} = {item!r} is beyond any sane network ({what} at most {limit:,g}); check the spec")


# ---- validation helpers: one message format everywhere ---------------------------------------
def check(spec: Spec, field: str, ok: bool, allowed: str) -> None:
    """Raise ``ValueError('<Class>.<field> must be <allowed>, got <value>')`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{type(spec).__name__}.{field} must be {allowed}, got {getattr(spec, field)!r}")


def check_choice(spec: Spec, field: str, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    value = getattr(spec, field)
    if value not in allowed:
        listed = [repr(a) for a in allowed]
        names = (", ".join(listed[:-1]) + " or " + listed[-1]) if len(listed) <= 3 else "one of " + ", ".join(listed)
        raise ValueError(f"{type(spec).__name__}.{field} must be {names}, got {value!r}")


def check_positive(spec: Spec, *fields: str, allow_zero: bool = False) -> None:
    for field in fields:
        value = getattr(spec, field)
        if value is None:
            continue
        ok = value >= 0 if allow_zero else value > 0
        check(spec, field, ok, "a non-negative number" if allow_zero else "a positive number")


def check_stride(spec: Spec, allowed: tuple[int, ...] = (1, 2)) -> None:
    value = spec.stride  # type: ignore[attr-defined]
    if value not in allowed:
        raise ValueError(f"{type(spec).__name__}.stride must be {' or '.join(map(str, allowed))}, got {value!r}")
