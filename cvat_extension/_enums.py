"""One parser for every string option that maps onto a ``str`` Enum."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from cvat_extension.errors import ConfigError

E = TypeVar("E", bound=Enum)


def parse_enum(cls: type[E], value: str | E) -> E:
    """Return the member of ``cls`` whose value matches ``value`` regardless of case.

    Raises:
        ConfigError: no member matches; the message lists the valid values.
    """
    if isinstance(value, cls):
        return value
    wanted = str(value).strip().lower()
    for member in cls:
        if str(member.value).lower() == wanted:
            return member
    valid = ", ".join(repr(m.value) for m in cls)
    raise ConfigError(f"{cls.__name__}: unknown value {value!r}; valid values are {valid}")
