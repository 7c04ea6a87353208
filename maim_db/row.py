"""The base of every typed row: a pydantic model that knows its table and key.

Columns the database fills (ids, ``agent_id`` from the scope, timestamps) are declared with
:func:`server_default`: a row built in Python may leave them out, and ``insert`` then sends
only the fields that were actually given, so SQL defaults apply.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field


class _ServerDefault:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<server default>"


SERVER_DEFAULT: Final = _ServerDefault()


def server_default() -> Any:
    """A field the database fills when the row is inserted without it."""
    return Field(default=SERVER_DEFAULT)


class Row(BaseModel):
    """One row of ``table``; ``key`` names its primary-key columns in order."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    table: ClassVar[str]
    key: ClassVar[tuple[str, ...]]

    def given(self) -> dict[str, Any]:
        """The columns set on this row, in declaration order, for INSERT."""
        return {name: getattr(self, name) for name in type(self).model_fields
                if name in self.model_fields_set}
