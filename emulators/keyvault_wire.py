"""How Key Vault secrets look on the wire: bundles, list items, paging links, PATCH bodies."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from emulators.keyvault_state import (
    RECOVERABLE_DAYS,
    KeyVaultError,
    check_content_type,
    check_tags,
)
from emulators.web import base_url

if TYPE_CHECKING:
    from starlette.requests import Request

    from emulators.keyvault_state import DeletedSecret, SecretVersion

__all__ = [
    "attributes_of",
    "bundle",
    "cursor_of",
    "deleted_bundle",
    "keyvault_error_body",
    "max_results",
    "next_link",
    "opt_int",
    "patch_changes",
]

PAGE_MAX = 25
_CODES = {
    400: "BadParameter",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    429: "Throttled",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def keyvault_error_body(status: int, path: str = "") -> dict[str, Any]:
    """Return a Key Vault-shaped error body for ``status`` (used by injected faults)."""
    del path
    code = _CODES.get(status, "InternalServerError")
    return {"error": {"code": code, "message": f"{code} (HTTP {status})."}}


def attributes_of(v: SecretVersion) -> dict[str, Any]:
    """Render a version's ``attributes`` object."""
    attributes: dict[str, Any] = {"enabled": v.enabled}
    if v.nbf is not None:
        attributes["nbf"] = v.nbf
    if v.exp is not None:
        attributes["exp"] = v.exp
    attributes |= {
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": RECOVERABLE_DAYS,
    }
    return attributes


def bundle(base: str, v: SecretVersion, *, value: bool, versioned: bool = True) -> dict[str, Any]:
    """Render a SecretBundle (``value`` included or not) or, unversioned, a list item."""
    ident = f"{base}/secrets/{v.name}/{v.version}" if versioned else f"{base}/secrets/{v.name}"
    out: dict[str, Any] = {"value": v.value} if value else {}
    out["id"] = ident
    if v.content_type is not None:
        out["contentType"] = v.content_type
    out["attributes"] = attributes_of(v)
    if v.tags:
        out["tags"] = v.tags
    return out


def deleted_bundle(base: str, v: SecretVersion, d: DeletedSecret) -> dict[str, Any]:
    """Render a DeletedSecretBundle (no value)."""
    return {
        "recoveryId": f"{base}/deletedsecrets/{v.name}",
        "deletedDate": d.deleted_date,
        "scheduledPurgeDate": d.scheduled_purge_date,
        **bundle(base, v, value=False),
    }


def max_results(request: Request) -> int:
    """Return the page size: ``maxresults`` (1-25, default 25) or raise 400."""
    raw = request.query_params.get("maxresults")
    if raw is None:
        return PAGE_MAX
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= PAGE_MAX:
        raise KeyVaultError(
            400,
            "BadParameter",
            f"Invalid value for maxresults: {raw}. It must be 1 to {PAGE_MAX}.",
        )
    return value


def next_link(request: Request, cursor: str | None) -> str | None:
    """Return the absolute ``nextLink`` for ``cursor`` (None at the end of the list)."""
    if cursor is None:
        return None
    token = base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")
    query = {
        "api-version": request.query_params.get("api-version", ""),
        "$skiptoken": token,
        "maxresults": str(max_results(request)),
    }
    return f"{base_url(request)}{request.url.path}?{urlencode(query)}"


def cursor_of(request: Request) -> str | None:
    """Decode the ``$skiptoken`` query parameter, if any."""
    token = request.query_params.get("$skiptoken")
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise KeyVaultError(400, "BadParameter", "Invalid $skiptoken.") from None


def opt_int(raw: object, field_name: str) -> int | None:
    """Return an optional integer attribute (``nbf``/``exp``) or raise 400."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise KeyVaultError(400, "BadParameter", f"Attribute {field_name} must be an integer.")
    return raw


def patch_changes(body: dict[str, Any]) -> dict[str, Any]:
    """Translate a PATCH body into `SecretVersion` field changes."""
    changes: dict[str, Any] = {}
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise KeyVaultError(400, "BadParameter", "attributes must be an object.")
    if "enabled" in attributes and attributes["enabled"] is not None:
        changes["enabled"] = bool(attributes["enabled"])
    for key in ("nbf", "exp"):
        if key in attributes:
            changes[key] = opt_int(attributes[key], key)
    if "tags" in body and body["tags"] is not None:
        tags = body["tags"]
        if not isinstance(tags, dict):
            raise KeyVaultError(400, "BadParameter", "tags must be an object.")
        check_tags(tags)
        changes["tags"] = dict(tags)
    if "contentType" in body:
        check_content_type(body["contentType"])
        changes["content_type"] = body["contentType"]
    return changes
