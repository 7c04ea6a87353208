"""Checking a (partial) configuration document against the row models, before anything is
written: every problem is collected, then all are reported at once."""

from __future__ import annotations

import math
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ...errors import InputError
from ...row import Row
from .shape import fields


@cache
def adapter(model: type[Row], field: str) -> TypeAdapter[Any]:
    annotation: Any = model.model_fields[field].annotation
    return TypeAdapter(annotation)


class Errors:
    """The problems found so far, each with its path in the document."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError("invalid configuration document (nothing was changed):\n  "
                             + "\n  ".join(self.items))


def as_object(value: Any, path: str, errors: Errors) -> dict[str, Any]:
    if not isinstance(value, dict):
        errors.add(path, f"expected an object, got {type(value).__name__}")
        return {}
    return value


def unstorable(value: Any) -> str | None:
    """What a configuration value cannot be: NaN or infinite (a CHECK such as ``>= 0`` lets
    both through), or hold a null inside a list or table (MaiBot's TOML has no null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if isinstance(value, dict | list):
        inner = value.values() if isinstance(value, dict) else value
        for item in inner:
            if item is None:
                return "holds a null, which MaiBot's TOML cannot express"
            if problem := unstorable(item):
                return problem
    return None


def check_fields(model: type[Row], given: Any, path: str, errors: Errors,
            renames: dict[str, str] | None = None) -> dict[str, Any]:
    """Validate the fields of one section against its row model's annotations."""
    out: dict[str, Any] = {}
    allowed = fields(model)
    for key, value in as_object(given, path, errors).items():
        column = (renames or {}).get(key, key)
        if column not in allowed:
            shown = [k for r in allowed for k in [next(
                (a for a, c in (renames or {}).items() if c == r), r)]]
            errors.add(f"{path}.{key}", f"unknown key; known: {', '.join(shown)}")
            continue
        if problem := unstorable(value):
            errors.add(f"{path}.{key}", problem)
            continue
        try:
            out[column] = adapter(model, column).validate_python(value, strict=True)
        except ValidationError as err:
            errors.add(f"{path}.{key}", "; ".join(e["msg"] for e in err.errors()))
    return out


def check_items(model: type[Row], given: Any, path: str, errors: Errors,
                 renames: dict[str, str] | None = None) -> list[dict[str, Any]]:
    if not isinstance(given, list):
        errors.add(path, f"expected a list, got {type(given).__name__}")
        return []
    items = []
    for i, item in enumerate(given):
        where = f"{path}[{i}]"
        values = check_fields(model, item, where, errors, renames)
        if not isinstance(values.get("name"), str) or not values.get("name"):
            errors.add(f"{where}.name", "required: items are matched by name")
        items.append(values)
    return items
