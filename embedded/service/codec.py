"""The stack's dataclasses to JSON and back (pydantic's TypeAdapter: one schema per type, from its fields;
FastAPI documents the same schema in the OpenAPI)."""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


@cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def adapter(tp: Any) -> TypeAdapter[Any]:
    return _adapter(tp)


def encode(obj: Any, tp: Any = None) -> Any:
    """`obj` as JSON-ready data (`tp`: its declared type, e.g. list[ProcessInfo])."""
    return adapter(tp if tp is not None else type(obj)).dump_python(obj, mode="json")


def decode(tp: type[T] | Any, data: Any) -> T:
    return adapter(tp).validate_python(data)
