"""Read Key Vault events from Event Grid (Event Grid schema or CloudEvents) into one value.

Field names are matched case-insensitively (docs use ``VaultName``, the swagger ``vaultName``);
``NBF``/``EXP`` may be numbers, strings or null. Anything that is not a well-formed Key Vault
secret event raises :class:`MalformedEventError` with what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ACTIONABLE", "KeyVaultEvent", "MalformedEventError", "parse_event"]

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
NEW_VERSION = "Microsoft.KeyVault.SecretNewVersionCreated"
ACTIONABLE = frozenset({NEAR_EXPIRY, EXPIRED})


class MalformedEventError(ValueError):
    """The payload is not a Key Vault secret event; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class KeyVaultEvent:
    """The parts of a Key Vault secret event that decide what to do."""

    event_id: str
    event_type: str
    vault_host: str | None
    vault_name: str | None
    secret_name: str
    version: str | None
    expires_on: float | None


def _lower_keys(data: object) -> dict[str, Any]:
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            msg = "event data is not JSON"
            raise MalformedEventError(msg) from None
    if not isinstance(data, dict):
        msg = f"event data must be an object, got {type(data).__name__}"
        raise MalformedEventError(msg)
    return {str(k).lower(): v for k, v in data.items()}


def _epoch(value: object) -> float | None:
    if value is None or value == "":
        return None
    msg = "EXP must be a number of seconds, a numeric string or null"
    if isinstance(value, bool):
        raise MalformedEventError(msg)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise MalformedEventError(f"{msg}, got {type(value).__name__}") from None
    if not math.isfinite(number):
        raise MalformedEventError(msg)
    return number


def _text(value: object, field: str, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            msg = f"event has no {field}"
            raise MalformedEventError(msg)
        return None
    if not isinstance(value, str):
        msg = f"event field {field} must be a string, got {type(value).__name__}"
        raise MalformedEventError(msg)
    return value


def parse_event(
    *, event_id: object, event_type: object, subject: object, data: object
) -> KeyVaultEvent:
    """Return the Key Vault event these fields describe; raise ``MalformedEventError`` if none."""
    kind = str(_text(event_type, "event type"))
    fields = _lower_keys(data)
    object_type = fields.get("objecttype")
    if object_type is not None and str(object_type).lower() != "secret":
        msg = f"event is about a {object_type}, not a secret"
        raise MalformedEventError(msg)
    url = _text(fields.get("id"), "data.Id", required=False)
    try:
        parts = urlsplit(url) if url else None
        host = parts.netloc.lower() if parts and parts.hostname else None
    except ValueError:
        msg = "data.Id is not a URL"
        raise MalformedEventError(msg) from None
    path = parts.path.strip("/").split("/") if parts else []
    name = _text(fields.get("objectname"), "data.ObjectName", required=False) or (
        path[1] if len(path) >= 2 and path[0] == "secrets" else None  # noqa: PLR2004
    )
    name = name or _text(subject, "data.ObjectName or subject")
    version = _text(fields.get("version"), "data.Version", required=False) or (
        path[2] if len(path) >= 3 else None  # noqa: PLR2004
    )
    return KeyVaultEvent(
        event_id=str(event_id or ""),
        event_type=kind,
        vault_host=host,
        vault_name=_text(fields.get("vaultname"), "data.VaultName", required=False),
        secret_name=str(name),
        version=version,
        expires_on=_epoch(fields.get("exp")),
    )
