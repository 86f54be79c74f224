"""Checks of single configuration values that decide where a request (and a secret) goes.

Each returns the value (normalised) or raises ``ValueError`` with a message that says what to do;
pydantic turns it into a ``path: message`` line. Used by the configuration and by updater plugins:

- :func:`https_url` — ``https://``, a plain host name (no userinfo such as ``user@``, no
  backslash, no whitespace), no query or fragment; a path only where the field allows one.
- :func:`api_path` — a route appended to a base URL: starts with ``/`` (so it can never change the
  host), and its only placeholder is ``{id}``.
- :func:`guid` — an id that Azure (or Databricks) defines as a GUID.

And the annotated types every configuration table (the configuration's own, each principal
kind's, each updater's) is written with: ``SecretName``, ``HttpsUrl``, ``HostUrl``, ``Guid``,
and :class:`Model`, their frozen base that refuses unknown keys.
"""

from __future__ import annotations

import re
import string
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = [
    "Guid",
    "HostUrl",
    "HttpsUrl",
    "Model",
    "SecretName",
    "api_path",
    "guid",
    "https_url",
    "secret_name",
]

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_BAD_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")


def https_url(value: str, *, path_allowed: bool = True) -> str:
    """Return *value* without trailing slashes if it is a safe ``https://`` URL, else raise."""
    value = value.strip()
    shape = "https://host" + ("[/path]" if path_allowed else "")
    try:
        url = urlsplit(value)
        _ = url.port  # a port that is not a number raises ValueError
    except ValueError:
        url = None
    if url is None or url.scheme != "https" or _BAD_CHARS.search(value):
        raise ValueError(f"{value!r} must be an {shape} URL without spaces or backslashes")
    if "@" in url.netloc:
        raise ValueError(
            "the URL has a user name or password before '@' (userinfo), so requests would go to "
            f"{url.hostname!r}; write only {shape} (the value is not repeated here: it may hold "
            "a password)"
        )
    bracket = url.netloc.find("]")
    host = url.netloc[: bracket + 1] if bracket > 0 else url.netloc.split(":")[0]
    if not _HOST.fullmatch(host):
        raise ValueError(f"{value!r} must be an {shape} URL with a host name")
    if url.query or url.fragment or value.endswith(("?", "#")):
        raise ValueError(f"{value!r} must not have a query or fragment ('?', '#')")
    if not path_allowed and url.path.strip("/"):
        raise ValueError(
            f"{value!r} has a path ({url.path!r}): give only https://host (the API paths are "
            "added by the rotator)"
        )
    return value.rstrip("/")


def api_path(value: str) -> str:
    """Return *value* if it is a route such as ``/sources/{id}``, else raise."""
    if not value.startswith("/") or value.startswith("//") or _BAD_CHARS.search(value):
        raise ValueError(
            f"{value!r} must be a path starting with a single '/' (e.g. '/sources/{{id}}'), "
            "without spaces or backslashes: it is appended to base_url"
        )
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError:
        fields = ["?"]
    if any(name != "id" for name in fields):
        raise ValueError(
            f"{value!r} may use only the placeholder {{id}} (write a literal brace as {{{{ }}}})"
        )
    return value


def guid(value: str) -> str:
    """Return *value* (stripped) if it is a GUID such as ``00000000-0000-…``, else raise."""
    value = value.strip()
    if not _GUID.fullmatch(value):
        raise ValueError(
            f"{value[:60]!r} is not a GUID (8-4-4-4-12 hex digits, e.g. "
            "'11111111-2222-3333-4444-555555555555'): copy the id from the Azure portal or "
            "`az ad sp show`, not a name"
        )
    return value


_SECRET_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")


def secret_name(value: str) -> str:
    """Return *value* if it is a valid Key Vault secret name, else raise."""
    if not _SECRET_NAME.fullmatch(value):
        msg = (
            f"{value!r} is not a valid Key Vault secret name: use 1-127 letters, digits and dashes"
        )
        raise ValueError(msg)
    return value


def _host_only(value: str) -> str:
    return https_url(value, path_allowed=False)


SecretName = Annotated[str, AfterValidator(secret_name)]
HttpsUrl = Annotated[str, AfterValidator(https_url)]
HostUrl = Annotated[str, AfterValidator(_host_only)]
"""An ``https://host`` URL without a path (a workspace: the API paths are the rotator's)."""
Guid = Annotated[str, AfterValidator(guid)]


class Model(BaseModel):
    """A configuration table: unknown keys are errors, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)
