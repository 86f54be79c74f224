"""A masked container for secret values.

``Secret`` never shows its value in ``repr``/``str``/f-strings/pickles; only ``reveal()`` does,
and only the code that must send the value over the wire calls it.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Final, NoReturn

__all__ = ["Secret", "known_values"]

_MASK: Final = "[secret]"
_KNOWN: OrderedDict[str, None] = OrderedDict()
_KNOWN_MAX: Final = 4096
_KNOWN_MIN: Final = 8
_KNOWN_LOCK = Lock()


def known_values() -> list[str]:
    """Return the values of the most recent Secrets made in this process (for log redaction)."""
    with _KNOWN_LOCK:
        return list(_KNOWN)


def _remember(value: str) -> None:
    if len(value) < _KNOWN_MIN:
        return  # too short to be a real credential, and masking it would garble logs
    with _KNOWN_LOCK:
        _KNOWN[value] = None
        _KNOWN.move_to_end(value)
        while len(_KNOWN) > _KNOWN_MAX:
            _KNOWN.popitem(last=False)


class Secret:
    """An immutable secret string whose representations are masked."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            msg = "a Secret needs a non-empty string"
            raise ValueError(msg)
        object.__setattr__(self, "_value", value)
        _remember(value)

    def reveal(self) -> str:
        """Return the clear-text value; call only where it is sent over the wire or stored."""
        return self._value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        msg = "Secret is immutable"
        raise AttributeError(msg)

    def __repr__(self) -> str:
        return f"Secret({_MASK})"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        msg = "a Secret cannot be pickled"
        raise TypeError(msg)
