"""Run records as JSON and back: `record_to_json` / `record_from_json`, one `kind` per record type.

A record is a frozen dataclass of plain values, nested dataclasses (IterationRecord, CellRecord,
SubCallRecord, RunMetadata), tuples of them and str enums (RunStatus, CellStatus). Its JSON form is
`{"kind": "<kind>", <field>: <value>, ...}`: enums are their values, tuples are lists, a float that is
not finite is the string "nan", "inf" or "-inf" (JSON has none). Decoding follows
the dataclasses' own field types, so a field added to a record needs no change here; a field missing
from stored JSON takes the dataclass's default (an old record read by newer code), and an unknown
field, a wrong type or an unknown kind is a ValueError naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any, Union

from ..rlm.records import (
    CellRecorded,
    IterationRecorded,
    LevelEnded,
    LevelStarted,
    LimitHit,
    Record,
    RunEnded,
    RunStarted,
    SubCallRecorded,
)
from ..rlm.trajectory import RunMetadata

# The stored name of each record type; never renamed (stored rows carry them).
KINDS: dict[str, type[Any]] = {
    "run_started": RunStarted,
    "level_started": LevelStarted,
    "iteration_recorded": IterationRecorded,
    "cell_recorded": CellRecorded,
    "subcall_recorded": SubCallRecorded,
    "limit_hit": LimitHit,
    "level_ended": LevelEnded,
    "run_ended": RunEnded,
}
_KIND_OF: dict[type[Any], str] = {cls: kind for kind, cls in KINDS.items()}
_FROM_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def kind_of(record: Record) -> str:
    try:
        return _KIND_OF[type(record)]
    except KeyError:
        raise ValueError(f"not a run record: {type(record).__name__}") from None


def record_to_json(record: Record) -> dict[str, Any]:
    """The record as a JSON-ready dict (str keys; str, int, float, bool, None, list and dict values)."""
    return {"kind": kind_of(record), **_encode(record)}


def record_from_json(data: dict[str, Any]) -> Record:
    """The record `record_to_json` made (also after a trip through json.dumps/loads)."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise ValueError("a stored record must be an object with a str 'kind'")
    cls = KINDS.get(data["kind"])
    if cls is None:
        raise ValueError(f"unknown record kind {data['kind']!r}")
    fields = {k: v for k, v in data.items() if k != "kind"}
    record: Record = _decode_dataclass(cls, fields, data["kind"])
    return record


def metadata_to_json(metadata: RunMetadata) -> dict[str, Any]:
    encoded: dict[str, Any] = _encode(metadata)
    return encoded


def metadata_from_json(data: dict[str, Any]) -> RunMetadata:
    metadata: RunMetadata = _decode_dataclass(RunMetadata, data, "metadata")
    return metadata


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or infinity (PostgreSQL refuses them)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError(f"cannot store a value of type {type(value).__name__}")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _field_types(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _decode_dataclass(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
    hints = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown fields for {cls.__name__}: {unknown}")
    values = {name: _decode(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ValueError(f"{where}: {exc}") from None


def _decode(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # only `X | None` occurs in records
        return _decode(inner, value, where)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a {tp.__name__}") from None
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and value in _FROM_NON_FINITE:
        return _FROM_NON_FINITE[value]
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise ValueError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__}")
