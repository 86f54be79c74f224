"""Read the HTTP API's requests: ``POST /api/rotations/{target}`` options, strictly.

Options come as a JSON body ``{"force": bool, "dry_run": bool}`` and/or query parameters
``?force=true&dry_run=1``. Anything else is a :class:`BadRequestError` that says what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BadRequestError", "RotateOptions", "parse_rotate_request"]

_MAX_BODY = 16 * 1024
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}
_OPTIONS = ("force", "dry_run")


class BadRequestError(ValueError):
    """The request is malformed; the message says what is wrong and what is accepted."""


@dataclass(frozen=True, slots=True)
class RotateOptions:
    """What a manual rotation asks for."""

    force: bool = False
    dry_run: bool = False


def _flag(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    msg = f"{name} must be true or false"
    raise BadRequestError(msg)


def parse_rotate_request(params: Mapping[str, str], body: bytes) -> RotateOptions:
    """Return the options of a rotate request, or raise ``BadRequestError``."""
    options: dict[str, bool] = {}
    for key, value in params.items():
        if key == "code":  # the function key, when sent as a query parameter
            continue
        if key not in _OPTIONS:
            msg = f"unknown query parameter {key[:40]!r}; accepted: force, dry_run"
            raise BadRequestError(msg)
        options[key] = _flag(key, value)
    if len(body) > _MAX_BODY:
        msg = f'body too large ({len(body)} bytes); send at most {{"force": ..., "dry_run": ...}}'
        raise BadRequestError(msg)
    if body.strip():
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            msg = 'body is not JSON; send {"force": true} or {"dry_run": true}, or nothing'
            raise BadRequestError(msg) from None
        if not isinstance(data, dict):
            msg = 'body must be a JSON object such as {"force": true}'
            raise BadRequestError(msg)
        for key, value in data.items():
            if key not in _OPTIONS:
                msg = f"unknown field {str(key)[:40]!r}; accepted: force, dry_run"
                raise BadRequestError(msg)
            options[key] = _flag(key, value)
    return RotateOptions(**options)
