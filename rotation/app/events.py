"""Read Key Vault events from Event Grid (Event Grid schema or CloudEvents) into one value.

Events are read as Microsoft publishes them, not as we would like them: field names are matched
ignoring case and surrounding spaces (the docs use ``VaultName``, the swagger ``vaultName``, and
the published sample has ``"ObjectName "``), string values are stripped (the sample's
``"Version": " ee05…"``), and versions and secret names — caseless in Key Vault — are
lower-cased. Only the fields that decide what to do are read: a field the handler does not use
(``NBF``, ``EXP``, …) never makes an event malformed. Anything that cannot name a secret raises
:class:`MalformedEventError` with what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "ACTIONABLE",
    "EXPIRED",
    "NEAR_EXPIRY",
    "KeyVaultEvent",
    "MalformedEventError",
    "parse_event",
]

NEAR_EXPIRY = "Microsoft.KeyVault.SecretNearExpiry"
EXPIRED = "Microsoft.KeyVault.SecretExpired"
ACTIONABLE = frozenset({NEAR_EXPIRY, EXPIRED})

_SECRET_PATH_PARTS = 2  # /secrets/{name}
_VERSION_PATH_PARTS = 3  # /secrets/{name}/{version}


class MalformedEventError(ValueError):
    """The payload is not a Key Vault secret event; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class KeyVaultEvent:
    """The parts of a Key Vault secret event that decide what to do (names normalised).

    ``vault_host`` and ``vault_name`` are lower-case or None; ``secret_name`` is as sent but
    stripped (compare it ignoring case); ``version`` is lower-case, or None when the event names
    no version (then it is a reason to look at the target, not to force a rotation).
    """

    event_id: str
    event_type: str
    vault_host: str | None
    vault_name: str | None
    secret_name: str
    version: str | None


def _fields(data: object) -> dict[str, Any]:
    """Return *data* as a dict with stripped, lower-cased keys and stripped string values."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            msg = "event data is not JSON"
            raise MalformedEventError(msg) from None
    if not isinstance(data, dict):
        msg = f"event data must be an object, got {type(data).__name__}"
        raise MalformedEventError(msg)
    return {str(k).strip().lower(): v.strip() if isinstance(v, str) else v for k, v in data.items()}


def _text(value: object, field: str, *, required: bool = True) -> str | None:
    if isinstance(value, str):
        value = value.strip()
    if value is None or value == "":
        if required:
            msg = f"event has no {field}"
            raise MalformedEventError(msg)
        return None
    if not isinstance(value, str):
        msg = f"event field {field} must be a string, got {type(value).__name__}"
        raise MalformedEventError(msg)
    return value


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def parse_event(
    *, event_id: object, event_type: object, subject: object, data: object
) -> KeyVaultEvent:
    """Return the Key Vault event these fields describe; raise ``MalformedEventError`` if none."""
    kind = str(_text(event_type, "event type"))
    fields = _fields(data)
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
    path = [p for p in parts.path.split("/") if p] if parts else []
    in_path = len(path) >= _SECRET_PATH_PARTS and path[0].lower() == "secrets"
    name = _text(fields.get("objectname"), "data.ObjectName", required=False) or (
        path[1] if in_path else None
    )
    name = name or _text(subject, "data.ObjectName or subject")
    version = _text(fields.get("version"), "data.Version", required=False) or (
        path[2] if in_path and len(path) >= _VERSION_PATH_PARTS else None
    )
    return KeyVaultEvent(
        event_id=str(event_id or "").strip(),
        event_type=kind,
        vault_host=host,
        vault_name=_lower(_text(fields.get("vaultname"), "data.VaultName", required=False)),
        secret_name=str(name).strip(),
        version=_lower(version),
    )
